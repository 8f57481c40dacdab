//! Workspace-level tests of the engine: explicit gradients against Burn's autodiff, the
//! defining property of each rule, learning on the real MNIST, and wgpu against the CPU.

mod autodiff;
mod checkpoint;
mod common;
mod conv_rules;
mod golden;
mod image_folder;
mod mnist;
mod resnet;
mod resnet_training;
mod rules;
mod wgpu;
