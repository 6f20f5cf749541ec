//! Choosing the device (and so the Burn backend) by name at run time, among those compiled in.

use burn::prelude::*;
use burn::tensor::{DeviceConfig, DeviceError, FloatDType};

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

    /// The plain (inference) device. The GPU devices on wgpu (`wgpu`, `vulkan`) are brought up
    /// here, once per process, so that a machine without an adapter for them is an error now
    /// rather than a panic at the first tensor; `wgpu` also fails when [`WGPU_API_VAR`] names
    /// an API wrongly. (`cuda` is not probed: Burn 0.22 has no fallible way to start it.)
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
            "vulkan" => started_wgpu(burn::tensor::wgpu::WgpuBackend::Vulkan).map_err(|e| {
                TrainError::Config(format!(
                    "the vulkan device cannot start: {e} (a Vulkan driver for a GPU is \
                         needed; the flex device runs on the CPU)"
                ))
            })?,
            #[cfg(feature = "cuda")]
            "cuda" => Device::cuda(burn::tensor::DeviceIndex::Default),
            other => unreachable!("`{other}` was checked to be compiled in"),
        })
    }

    /// The plain device computing in `precision`: [`device`](Self::device), then Burn's
    /// `Device::configure` with that float type, which must come before the device's first
    /// tensor. A device that does not support the type (flex has no `flex32`) is a
    /// configuration error, as is asking a device that already computes in another type in
    /// this process (a device's float type is set once per process).
    pub fn device_with(self, precision: Precision) -> Result<Device, TrainError> {
        let mut device = self.device()?;
        let wanted = precision.float_dtype();
        let current = device.settings().float_dtype;
        if current == wanted {
            return Ok(device);
        }
        device
            .configure(DeviceConfig::default().float_dtype(wanted))
            .map_err(|error| match error {
                DeviceError::UnsupportedDType { .. } => TrainError::Config(format!(
                    "the {self} device cannot compute in {precision}: {}",
                    precision.supported_hint()
                )),
                DeviceError::AlreadyInitialized { .. } => TrainError::Config(format!(
                    "the {self} device already computes in {} in this process; a device's \
                     precision is set once, before its first tensor",
                    Precision::from_float_dtype(current)
                        .map_or_else(|| format!("{current:?}"), |p| p.to_string())
                )),
            })?;
        Ok(device)
    }
}

/// The float type a run computes in (`--precision`). Burn 0.22 has no autocast: the whole
/// model (parameters, activations, gradients, optimiser state) is in this type; the losses
/// compute in float32 whatever it is ([`supcon_loss::LOSS_DTYPE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats (the default).
    #[default]
    F32,
    /// IEEE half precision (5 exponent bits: values above 65,504 overflow).
    F16,
    /// bfloat16 (float32's range, 8 significant bits).
    Bf16,
    /// CubeCL's flex32: float32 storage, half-precision arithmetic where the GPU allows; GPU
    /// devices only.
    Flex32,
}

impl Precision {
    /// Every precision, in the order `--help` lists them.
    pub const ALL: [Precision; 4] = [
        Precision::F32,
        Precision::F16,
        Precision::Bf16,
        Precision::Flex32,
    ];

    /// Burn's float type for it.
    pub fn float_dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::F16 => FloatDType::F16,
            Precision::Bf16 => FloatDType::BF16,
            Precision::Flex32 => FloatDType::Flex32,
        }
    }

    /// The precision of a Burn float type, if it is one of these.
    pub fn from_float_dtype(dtype: FloatDType) -> Option<Precision> {
        Precision::ALL
            .into_iter()
            .find(|p| p.float_dtype() == dtype)
    }

    fn supported_hint(self) -> &'static str {
        match self {
            Precision::Flex32 => {
                "flex32 is for the GPU devices (wgpu, vulkan, cuda); use f16 or bf16"
            }
            _ => "use f32 (every device supports it)",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = TrainError;

    /// `f32`, `f16`, `bf16` or `flex32` (any case).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Precision::ALL
            .into_iter()
            .find(|p| p.to_string().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                TrainError::Config(format!(
                    "unknown precision `{name}`: use f32, f16, bf16 or flex32"
                ))
            })
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
            Precision::Flex32 => "flex32",
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

/// The `wgpu` device on the graphics API [`WGPU_API_VAR`] names (wgpu's own choice by default).
#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<Device, TrainError> {
    use burn::tensor::wgpu::WgpuBackend;

    let requested = std::env::var(WGPU_API_VAR).unwrap_or_default();
    let api = match requested.to_ascii_lowercase().as_str() {
        "" | "auto" => WgpuBackend::Auto,
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
    started_wgpu(api).map_err(|e| {
        let hint = if api == WgpuBackend::Auto {
            format!(
                "no graphics API of this machine has an adapter; on one without a GPU, \
                 {WGPU_API_VAR}=gl runs on Mesa's llvmpipe (software)"
            )
        } else {
            format!("{WGPU_API_VAR}={requested}")
        };
        TrainError::Config(format!(
            "the wgpu device cannot start on {api:?}: {e} ({hint})"
        ))
    })
}

/// The wgpu runtime on the graphics API `api`, brought up once per process and API (Burn's
/// runtime cannot be configured twice; later calls get the same device, or the same error).
/// A runtime the application brought up before (by a tensor on `Device::wgpu`/`Device::vulkan`,
/// say) is that device.
#[cfg(any(feature = "wgpu", feature = "vulkan"))]
fn started_wgpu(api: burn::tensor::wgpu::WgpuBackend) -> Result<Device, String> {
    use burn::tensor::wgpu::{WgpuBackend, WgpuInitError};
    use std::sync::{Mutex, PoisonError};

    type Started = Vec<(WgpuBackend, Result<Device, String>)>;
    static STARTED: Mutex<Started> = Mutex::new(Vec::new());
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, result)) = started.iter().find(|(done, _)| *done == api) {
        return result.clone();
    }
    let result = match Device::wgpu_options().graphics_api(api).init() {
        Ok(device) => Ok(device),
        Err(error @ WgpuInitError::Registration { .. }) => {
            registered_before(api).ok_or_else(|| error.to_string())
        }
        Err(error) => Err(error.to_string()),
    };
    started.push((api, result.clone()));
    result
}

/// The device of a runtime registered on `api` before [`started_wgpu`] was first asked for it,
/// where Burn names it (`Device::vulkan`, `Device::wgpu`: the selectors `init` registers).
#[cfg(any(feature = "wgpu", feature = "vulkan"))]
fn registered_before(api: burn::tensor::wgpu::WgpuBackend) -> Option<Device> {
    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::WgpuBackend;
    match api {
        #[cfg(feature = "vulkan")]
        WgpuBackend::Vulkan => Some(Device::vulkan(DeviceKind::DefaultDevice)),
        #[cfg(feature = "wgpu")]
        WgpuBackend::Auto => Some(Device::wgpu(DeviceKind::DefaultDevice)),
        _ => None,
    }
}

/// The Burn features this build compiles the device `name`'s backend with, as `supcon-train`'s
/// cargo features enable them: `simd` and `rayon` for flex (and `avx512`, gemm's AVX-512
/// kernels, with the feature of that name), `autotune` and `fusion` for the GPU backends (each
/// convolution and matmul picks its fastest kernel on first use; element-wise chains run as one
/// kernel), none for ndarray and for names not compiled in.
pub fn backend_features(name: &str) -> &'static [&'static str] {
    if !compiled_in().contains(&name) {
        return &[];
    }
    match name {
        "flex" if cfg!(feature = "avx512") => &["simd", "rayon", "avx512"],
        "flex" => &["simd", "rayon"],
        "wgpu" | "vulkan" | "cuda" => &["autotune", "fusion"],
        _ => &[],
    }
}

/// The operations this build computes with supcon's own kernels on the device `name`, beside
/// Burn's: on flex (through `supcon-encoder`'s `flex` feature, which `supcon-train`'s enables)
/// BatchNorm in training (with the ReLU that follows it, where one does) and the convolutions
/// (one group, no bias): forward, weight gradient and input gradient; none elsewhere.
pub fn supcon_kernels(name: &str) -> &'static [&'static str] {
    if name == "flex" && compiled_in().contains(&name) {
        &[
            "batch_norm",
            "batch_norm_relu",
            "conv2d",
            "conv2d_weight_grad",
            "conv2d_input_grad",
        ]
    } else {
        &[]
    }
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
