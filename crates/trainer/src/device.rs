//! Choosing the Burn device at run time.

use burn::tensor::Device;
use burn::tensor::wgpu::WgpuBackend;
use thiserror::Error;

/// Where tensors live and kernels run (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// Burn's `flex` CPU backend (SIMD, multi-threaded with rayon).
    Cpu,
    /// `wgpu` with the platform's default graphics API (Vulkan on Linux).
    Wgpu,
    /// `wgpu` on Vulkan.
    WgpuVulkan,
    /// `wgpu` on OpenGL (also runs on Mesa's software driver llvmpipe).
    WgpuGl,
}

/// A device that could not be started.
#[derive(Debug, Error)]
#[error("cannot start the {choice:?} device: {message}")]
pub struct DeviceError {
    /// The device asked for.
    pub choice: DeviceChoice,
    /// What the backend said.
    pub message: String,
}

/// What a started device is, for the log and the bench: the backend and, for wgpu, the adapter
/// as it names itself and what kernels are compiled for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// `cpu (flex)`, `wgpu`, `wgpu-vulkan` or `wgpu-gl`.
    pub backend: String,
    /// The adapter (`NVIDIA H100 80GB HBM3`, `llvmpipe (LLVM 15.0.7, 256 bits)`); the CPU
    /// backend says `host CPU`.
    pub adapter: String,
    /// What kernels are compiled for (cubecl's fingerprint, e.g. `wgsl_...`, `spirv_...`).
    pub target: String,
    /// Whether the adapter is a software renderer (no card behind it).
    pub software: bool,
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.backend, self.adapter)?;
        if !self.target.is_empty() {
            write!(f, " [{}]", self.target)?;
        }
        if self.software {
            write!(f, " (software renderer)")?;
        }
        Ok(())
    }
}

impl DeviceChoice {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu (flex)",
            DeviceChoice::Wgpu => "wgpu",
            DeviceChoice::WgpuVulkan => "wgpu-vulkan",
            DeviceChoice::WgpuGl => "wgpu-gl",
        }
    }

    /// Describes `device` (started from this choice); opens it if it is not yet open.
    pub fn describe(self, device: &Device) -> DeviceInfo {
        let backend = self.name().to_string();
        if self == DeviceChoice::Cpu {
            return DeviceInfo {
                backend,
                adapter: "host CPU".into(),
                target: String::new(),
                software: false,
            };
        }
        match device.identity() {
            Some(id) => DeviceInfo {
                backend,
                adapter: id.name,
                target: id.fingerprint,
                software: id.physical.is_none(),
            },
            None => DeviceInfo {
                backend,
                adapter: "unknown adapter".into(),
                target: String::new(),
                software: false,
            },
        }
    }

    /// Starts the device.
    pub fn create(self) -> Result<Device, DeviceError> {
        let options = Device::wgpu_options();
        let result = match self {
            DeviceChoice::Cpu => return Ok(Device::flex()),
            DeviceChoice::Wgpu => options.init(),
            DeviceChoice::WgpuVulkan => options.graphics_api(WgpuBackend::Vulkan).init(),
            DeviceChoice::WgpuGl => options.graphics_api(WgpuBackend::Gl).init(),
        };
        result.map_err(|e| DeviceError {
            choice: self,
            message: e.to_string(),
        })
    }
}
