//! Intel AMX tiles for the int8 product (`tdpbssd`: a 16x64 tile of signed bytes times a
//! 16x64 tile of signed bytes in groups of 4 depths, into a 16x16 tile of int32), on
//! CPUs that have AMX-INT8 and a kernel that grants the tile state to this process.
//! The weights use the VNNI packing (16 channels x 4 depths per 64-byte row), which is
//! AMX's layout for the right-hand tile.

use std::arch::asm;
use std::sync::OnceLock;

/// Rows of input per call of the kernel: two row tiles.
pub(crate) const ROWS: usize = 32;

/// Whether AMX-INT8 is on this CPU and the kernel granted this process its tile data
/// (Linux's `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), asked once.
pub(crate) fn available() -> bool {
    static GRANTED: OnceLock<bool> = OnceLock::new();
    *GRANTED.get_or_init(|| {
        if std::env::var_os("FERROFLOW_NO_AMX").is_some() {
            return false;
        }
        // SAFETY: CPUID leaf 7 exists on every CPU with AVX-512 (checked by the caller's
        // VNNI test first) and has no side effect.
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        let (tile, int8) = ((leaf7.edx >> 24) & 1 == 1, (leaf7.edx >> 25) & 1 == 1);
        if !(tile && int8) {
            return false;
        }
        #[cfg(target_os = "linux")]
        {
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: a request for a permission; it changes no memory of this process.
            unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                ) == 0
            }
        }
        #[cfg(not(target_os = "linux"))]
        false
    })
}

/// Palette 1 with every tile 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

/// The tile configuration of this thread while alive; released on drop.
pub(crate) struct Config;

impl Config {
    /// Loads the configuration on the calling thread.
    pub(crate) fn load() -> Config {
        let mut cfg = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        for t in 0..8 {
            cfg.colsb[t] = 64;
            cfg.rows[t] = 16;
        }
        // SAFETY: `available()` granted the tile state; the configuration is valid.
        unsafe { asm!("ldtilecfg [{}]", in(reg) &cfg as *const TileConfig, options(nostack)) };
        Config
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        // SAFETY: a configuration was loaded by `load`.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// `c[2 * i + h] = sum over tiles t of A_i(t) . B_h(t)`: A_i the 16-row tile `i` of `a`
/// (rows of `stride` bytes) at depth `64 t`, B_h the tile `t` of the weights at `b_h`
/// (tiles of 16 rows of 64 bytes, one after another). With one weight block (`b1` is
/// `None`), only `c[0]` and `c[2]` are computed.
///
/// # Safety
/// A [`Config`] is loaded on this thread; the 32 rows of `a` (`stride` bytes apart) can
/// each be read for `64 * tiles` bytes, and each weight block has `tiles` tiles.
pub(crate) unsafe fn product(
    a: *const i8,
    stride: usize,
    b0: *const i8,
    b1: Option<*const i8>,
    tiles: usize,
    c: &mut [[i32; 256]; 4],
) {
    let a1 = unsafe { a.add(16 * stride) };
    // SAFETY: per the function's contract.
    unsafe {
        asm!(
            "tilezero tmm4",
            "tilezero tmm5",
            "tilezero tmm6",
            "tilezero tmm7",
            options(nostack, nomem)
        );
        match b1 {
            Some(b1) => {
                for t in 0..tiles {
                    asm!(
                        "tileloadd tmm0, [{a0} + {s}*1]",
                        "tileloadd tmm1, [{a1} + {s}*1]",
                        "tileloadd tmm2, [{b0} + {w}*1]",
                        "tileloadd tmm3, [{b1} + {w}*1]",
                        "tdpbssd tmm4, tmm0, tmm2",
                        "tdpbssd tmm5, tmm0, tmm3",
                        "tdpbssd tmm6, tmm1, tmm2",
                        "tdpbssd tmm7, tmm1, tmm3",
                        a0 = in(reg) a.add(64 * t),
                        a1 = in(reg) a1.add(64 * t),
                        b0 = in(reg) b0.add(1024 * t),
                        b1 = in(reg) b1.add(1024 * t),
                        s = in(reg) stride,
                        w = in(reg) 64usize,
                        options(nostack, readonly),
                    );
                }
            }
            None => {
                for t in 0..tiles {
                    asm!(
                        "tileloadd tmm0, [{a0} + {s}*1]",
                        "tileloadd tmm1, [{a1} + {s}*1]",
                        "tileloadd tmm2, [{b0} + {w}*1]",
                        "tdpbssd tmm4, tmm0, tmm2",
                        "tdpbssd tmm6, tmm1, tmm2",
                        a0 = in(reg) a.add(64 * t),
                        a1 = in(reg) a1.add(64 * t),
                        b0 = in(reg) b0.add(1024 * t),
                        s = in(reg) stride,
                        w = in(reg) 64usize,
                        options(nostack, readonly),
                    );
                }
            }
        }
        asm!(
            "tilestored [{c0} + {w}*1], tmm4",
            "tilestored [{c1} + {w}*1], tmm5",
            "tilestored [{c2} + {w}*1], tmm6",
            "tilestored [{c3} + {w}*1], tmm7",
            c0 = in(reg) c[0].as_mut_ptr(),
            c1 = in(reg) c[1].as_mut_ptr(),
            c2 = in(reg) c[2].as_mut_ptr(),
            c3 = in(reg) c[3].as_mut_ptr(),
            w = in(reg) 64usize,
            options(nostack),
        );
    }
}
