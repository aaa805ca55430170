//! The one error type of the crate. Bad input is reported here, never by a panic.

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched the request (or none exists: install a Vulkan driver such as Mesa's
    /// lavapipe, `apt-get install mesa-vulkan-drivers libvulkan1`).
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),
    /// The device was lost (driver reset, removal, or `destroy`); create a new context.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// A WGSL module failed to compile or a pipeline failed to build on this device.
    #[error("shader `{shader}` failed to compile: {message}")]
    ShaderCompilation { shader: String, message: String },
    /// An argument has the wrong shape, size or value.
    #[error("invalid `{arg}`: expected {expected}, got {got}")]
    InvalidShape {
        arg: &'static str,
        expected: String,
        got: String,
    },
    /// A buffer or binding would exceed a device limit.
    #[error("`{what}` needs {requested} bytes but the device limit `{limit}` is {max} bytes")]
    BufferTooLarge {
        what: &'static str,
        requested: u64,
        limit: &'static str,
        max: u64,
    },
    /// The adapter lacks an optional feature that this call needs.
    #[error("unsupported on this adapter: {feature}")]
    Unsupported { feature: String },
    /// A wgpu validation or out-of-memory error caught by an error scope.
    #[error("wgpu error: {0}")]
    Wgpu(String),
}

/// Result type of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidShape`].
    pub fn shape(arg: &'static str, expected: impl Into<String>, got: impl ToString) -> Self {
        Error::InvalidShape {
            arg,
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    /// Checks `(argument, elements it has, elements it needs)` in order; the first short
    /// one is an [`Error::InvalidShape`].
    pub fn check_lengths(checks: &[(&'static str, usize, usize)]) -> Result<()> {
        for &(arg, have, want) in checks {
            if have < want {
                return Err(Error::shape(arg, format!("≥ {want} elements"), have));
            }
        }
        Ok(())
    }
}
