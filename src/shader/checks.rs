//! [`ShaderChecks`]: which of wgpu's shader safety code a context's kernels are compiled with.

use crate::error::{Error, Result};

/// The safety code wgpu adds to every shader on native backends, and WGSL's zeroing of
/// workgroup memory: what a context's kernels are compiled with
/// ([`GpuContext::shader_checks`](crate::GpuContext::shader_checks),
/// [`GpuContext::with_shader_checks`](crate::GpuContext::with_shader_checks)).
/// [`ShaderChecks::DEFAULT`], every check but loop bounding, is the default.
///
/// Each check costs instructions in the kernels' innermost loops, and some cost far more: a
/// loop-bound counter can keep a driver from unrolling a loop or overlapping its loads (wgpu
/// issue #7698 saw a pipeline go from 0.1 to 10 ms). On an H200 (NVIDIA Vulkan 580.159.04,
/// 2026-11-27) loop bounding alone made the top-k kernels 1.4–2.7× slower and a plain row
/// read 2.4–19×; dropping it gave the speed of no checks at all, index clamps kept (the
/// README's benchmark section has the table). So this crate drops it by default, on its own
/// guarantee that every loop in its WGSL ends for every input its host checks accept (loop
/// bounds come from validated parameters, or from buffer contents clamped first), which the
/// test suite exercises with every check off. `bench --shader-checks` and `kernel_stats
/// --shader-checks` measure the checks on other drivers. The web backend ignores this: the
/// browser compiles the WGSL with its own checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShaderChecks {
    /// Clamp array indices, and buffer indices where the driver has no robust buffer access
    /// (Vulkan has it, so there buffer accesses stay checked by the driver either way).
    pub bounds: bool,
    /// A 64-bit iteration counter in every loop, so that no driver may assume a loop ends.
    pub loop_bounding: bool,
    /// Guards on integer `/` and `%` against a zero divisor and `i32::MIN / -1`.
    pub integer_division: bool,
    /// Zero each workgroup's shared memory before it starts. The kernels write every
    /// workgroup variable before reading it, which the test suite checks with this off.
    pub zero_workgroup_memory: bool,
}

impl ShaderChecks {
    /// Every check on: wgpu's default.
    pub const ALL: Self = Self::from_fields([true; 4]);
    /// Every check but loop bounding: this crate's default (see the type's documentation).
    pub const DEFAULT: Self = Self::from_fields([true, false, true, true]);
    /// Every check off.
    pub const NONE: Self = Self::from_fields([false; 4]);
    /// The names [`FromStr`](std::str::FromStr) accepts, one per field, in field order.
    pub const NAMES: [&str; 4] = [
        "bounds",
        "loop-bounding",
        "integer-division",
        "zero-workgroup-memory",
    ];

    const fn from_fields(
        [
            bounds,
            loop_bounding,
            integer_division,
            zero_workgroup_memory,
        ]: [bool; 4],
    ) -> Self {
        Self {
            bounds,
            loop_bounding,
            integer_division,
            zero_workgroup_memory,
        }
    }

    fn fields(self) -> [bool; 4] {
        [
            self.bounds,
            self.loop_bounding,
            self.integer_division,
            self.zero_workgroup_memory,
        ]
    }

    /// wgpu's form of the shader-module part (the workgroup zeroing is a pipeline option).
    pub(crate) fn runtime_checks(self) -> wgpu::ShaderRuntimeChecks {
        let mut checks = wgpu::ShaderRuntimeChecks::checked();
        checks.bounds_checks = self.bounds;
        checks.force_loop_bounding = self.loop_bounding;
        checks.int_div_checks = self.integer_division;
        checks
    }
}

impl Default for ShaderChecks {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `all`, `none`, `default`, or the checks to keep, comma-separated ([`ShaderChecks::NAMES`]),
/// e.g. `bounds,zero-workgroup-memory`.
impl std::str::FromStr for ShaderChecks {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "all" => return Ok(Self::ALL),
            "none" => return Ok(Self::NONE),
            "default" => return Ok(Self::DEFAULT),
            _ => {}
        }
        let mut kept = [false; 4];
        for name in s.split(',').map(str::trim) {
            let i = Self::NAMES.iter().position(|&n| n == name).ok_or_else(|| {
                Error::shape(
                    "shader checks",
                    format!("all, none or a comma-separated list of {:?}", Self::NAMES),
                    format!("{name:?}"),
                )
            })?;
            kept[i] = true;
        }
        Ok(Self::from_fields(kept))
    }
}

/// The form [`FromStr`](std::str::FromStr) reads back.
impl std::fmt::Display for ShaderChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::ALL => f.write_str("all"),
            Self::NONE => f.write_str("none"),
            c => {
                let kept: Vec<&str> = Self::NAMES
                    .into_iter()
                    .zip(c.fields())
                    .filter_map(|(name, on)| on.then_some(name))
                    .collect();
                f.write_str(&kept.join(","))
            }
        }
    }
}
