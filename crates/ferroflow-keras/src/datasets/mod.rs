//! Small datasets shipped inside ferroflow (`keras.datasets` style).

pub mod digits;
