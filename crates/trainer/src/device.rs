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

impl DeviceChoice {
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
