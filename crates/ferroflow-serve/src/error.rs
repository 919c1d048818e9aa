//! Request errors: a TF status code and a message, answered as `{"error": "..."}` with
//! the HTTP status TF Serving uses for that code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::fmt;

/// The TF (`absl::Status`) code of a failed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Malformed request: bad JSON, wrong shapes or dtypes, unknown signature.
    InvalidArgument,
    /// Unknown model, version or label.
    NotFound,
    /// The request cannot run in the server's current state.
    FailedPrecondition,
    /// The batching queue is full or the server is shutting down.
    Unavailable,
    /// The request ran past `--rest_api_timeout_in_ms`.
    DeadlineExceeded,
    /// The request body is over the size limit.
    ResourceExhausted,
    /// The model cannot do what was asked (`:classify` on a model without class scores).
    Unimplemented,
    /// A fault in the server or the model.
    Internal,
}

impl Code {
    /// The code's name as TF writes it (`INVALID_ARGUMENT`), used in metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::NotFound => "NOT_FOUND",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Unavailable => "UNAVAILABLE",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
        }
    }

    /// The HTTP status for the code (Google's canonical mapping, as TF Serving uses).
    pub fn http_status(self) -> StatusCode {
        match self {
            Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeError {
    /// The status code.
    pub code: Code,
    /// What went wrong, for the client.
    pub message: String,
}

impl ServeError {
    /// An error with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ServeError {
            code,
            message: message.into(),
        }
    }

    /// `INVALID_ARGUMENT`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// `NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// `INTERNAL`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }

    /// The JSON body, `{"error": "..."}`.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.message }).to_string()
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.message)
    }
}

impl std::error::Error for ServeError {}

/// A model error while running a request: the inputs were validated against the
/// signature first, so what is left is reported as an invalid argument (as TF does for
/// kernel shape errors) naming the op.
impl From<ferroflow_core::Error> for ServeError {
    fn from(e: ferroflow_core::Error) -> Self {
        ServeError::invalid(e.one_line())
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let mut r = json_response(self.code.http_status(), self.body());
        if self.code == Code::ResourceExhausted {
            // An oversized body is left unread: the connection closes after this
            // answer, and the header tells the client so before it sends the next one.
            r.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        r
    }
}

/// A response with a JSON body.
pub fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The result of a request handler.
pub type ServeResult<T> = Result<T, ServeError>;
