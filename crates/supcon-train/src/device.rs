//! Choosing the device (and so the Burn backend) by name at run time, among those compiled in.

use burn::prelude::*;

use crate::TrainError;

/// Every device name the trainer knows, compiled in or not.
pub const DEVICE_NAMES: [&str; 5] = ["flex", "ndarray", "wgpu", "vulkan", "cuda"];

/// The device used when none is asked for: the first compiled in, in [`DEVICE_NAMES`] order.
pub const DEFAULT_DEVICE: &str = if cfg!(feature = "flex") {
    "flex"
} else if cfg!(feature = "ndarray") {
    "ndarray"
} else if cfg!(feature = "wgpu") {
    "wgpu"
} else if cfg!(feature = "vulkan") {
    "vulkan"
} else {
    "cuda"
};

/// A device by name (`flex`, `ndarray`, `wgpu`, `vulkan`, `cuda`); configurations hold the
/// name. Any known name parses (a configuration may come from another build); whether its
/// backend is compiled in is checked by [`parse`](Self::parse), [`check`](Self::check) and
/// before the device is brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub struct DeviceChoice(&'static str);

impl<'de> serde::Deserialize<'de> for DeviceChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

impl DeviceChoice {
    /// Checks `name`: unknown names and backends not compiled in are configuration errors.
    pub fn parse(name: &str) -> Result<DeviceChoice, TrainError> {
        name.parse::<DeviceChoice>()?.check()
    }

    /// This device, if its backend is compiled in; otherwise an error saying how to get it.
    pub fn check(self) -> Result<DeviceChoice, TrainError> {
        if !compiled_in().contains(&self.0) {
            return Err(TrainError::Config(format!(
                "the `{}` device is not compiled in (this build has: {}); rebuild with \
                 `--features {}`",
                self.0,
                compiled_in().join(", "),
                self.0
            )));
        }
        Ok(self)
    }

    /// The name.
    pub fn name(self) -> &'static str {
        self.0
    }

    /// The plain (inference) device. Fails only for `wgpu` pinned by [`WGPU_API_VAR`] to a
    /// graphics API this machine cannot bring up, or named wrongly.
    pub fn device(self) -> Result<Device, TrainError> {
        self.check()?;
        Ok(match self.0 {
            #[cfg(feature = "flex")]
            "flex" => Device::flex(),
            // Deprecated in Burn 0.22 in favour of flex; kept as the compatibility backend.
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            "ndarray" => Device::ndarray(),
            #[cfg(feature = "wgpu")]
            "wgpu" => wgpu_device()?,
            #[cfg(feature = "vulkan")]
            "vulkan" => Device::vulkan(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "cuda")]
            "cuda" => Device::cuda(burn::tensor::DeviceIndex::Default),
            other => unreachable!("`{other}` was checked to be compiled in"),
        })
    }
}

impl Default for DeviceChoice {
    /// [`DEFAULT_DEVICE`].
    fn default() -> Self {
        DeviceChoice(DEFAULT_DEVICE)
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = TrainError;

    /// Any known device name, compiled in or not.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        DEVICE_NAMES
            .iter()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(|&known| DeviceChoice(known))
            .ok_or_else(|| {
                TrainError::Config(format!(
                    "unknown device `{name}`: use one of {}",
                    DEVICE_NAMES.join(", ")
                ))
            })
    }
}

impl From<DeviceChoice> for String {
    fn from(device: DeviceChoice) -> String {
        device.0.to_string()
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The environment variable that pins the graphics API of the `wgpu` device: `auto` (the
/// default: wgpu's choice, Vulkan first where it reaches a GPU), `vulkan`, `gl`, `metal` or
/// `dx12`. `gl` runs Burn's kernels through OpenGL, which on a machine without a GPU means
/// Mesa's llvmpipe (the continuous integration's software GPU).
pub const WGPU_API_VAR: &str = "SUPCON_WGPU_API";

/// The `wgpu` device on the graphics API [`WGPU_API_VAR`] names. A pinned API is brought up once
/// per process (Burn's runtime cannot be configured twice); later calls reuse it.
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, TrainError> {
    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::WgpuBackend;
    use std::sync::OnceLock;

    static PINNED: OnceLock<Result<Device, String>> = OnceLock::new();
    let requested = std::env::var(WGPU_API_VAR).unwrap_or_default();
    let api = match requested.to_ascii_lowercase().as_str() {
        "" | "auto" => return Ok(Device::wgpu(DeviceKind::DefaultDevice)),
        "vulkan" => WgpuBackend::Vulkan,
        "gl" | "opengl" => WgpuBackend::Gl,
        "metal" => WgpuBackend::Metal,
        "dx12" => WgpuBackend::Dx12,
        other => {
            return Err(TrainError::Config(format!(
                "{WGPU_API_VAR}=`{other}` is not a graphics API: use auto, vulkan, gl, metal or dx12"
            )));
        }
    };
    PINNED
        .get_or_init(|| {
            Device::wgpu_options()
                .graphics_api(api)
                .init()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| {
            TrainError::Config(format!(
                "the wgpu device cannot start on {api:?} ({WGPU_API_VAR}={requested}): {e}"
            ))
        })
}

/// The device names this build supports.
pub fn compiled_in() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "flex") {
        names.push("flex");
    }
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "vulkan") {
        names.push("vulkan");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}
