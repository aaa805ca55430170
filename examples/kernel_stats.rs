//! What the Vulkan driver made of every kernel: its per-pipeline statistics (registers,
//! workgroup memory, spills, as the driver names them) through
//! `VK_KHR_pipeline_executable_properties`, for occupancy questions that timings alone do not
//! answer (is a kernel latency-bound because few workgroups fit on a core?).
//!
//! `cargo run --release --example kernel_stats [NAME_FILTER] [--shader-checks SPEC]
//! [--constant NAME=VALUE ...]` (a pipeline constant for every module that declares it)
//!
//! Each composed kernel goes through naga to SPIR-V as wgpu's Vulkan backend sends it (one
//! entry point per module, pipeline constants at their defaults, buffer bounds left to the
//! device's robust buffer access, and the rest of wgpu's checks as `--shader-checks` says:
//! `default` (all but loop bounding) by default, as the library compiles them; `all`, `none`
//! or a list to keep, as
//! `ShaderChecks` parses it, to see what a check costs in registers and local memory;
//! workgroup memory zeroed natively where the device has Vulkan 1.3's
//! `shaderZeroInitializeWorkgroupMemory`, as wgpu does, else by naga's polyfill), then into
//! a compute pipeline created
//! with statistics capture on a device of its own. Kernels needing a feature the device lacks
//! are reported and skipped. Not a library path: a diagnostic for kernel authors.

use std::ffi::CString;

use ash::vk;
use knn_attention::ShaderChecks;
use knn_attention::shader::sources::ALL;
use naga::back::spv;
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut filter = String::new();
    let mut checks = ShaderChecks::DEFAULT;
    let mut constants = naga::back::PipelineConstants::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--shader-checks" => checks = args.next().ok_or("--shader-checks SPEC")?.parse()?,
            "--constant" => {
                let spec = args.next().ok_or("--constant NAME=VALUE")?;
                let (name, value) = spec.split_once('=').ok_or("--constant NAME=VALUE")?;
                constants.insert(name.to_owned(), value.parse()?);
            }
            _ => filter = arg,
        }
    }
    let gpu = Gpu::new(checks, constants)?;
    println!(
        "device: {}; shader checks: {checks}; workgroup zeroing: {}",
        gpu.name,
        if gpu.native_zeroing {
            "native"
        } else {
            "naga's polyfill"
        }
    );
    for (name, src) in ALL
        .iter()
        .filter(|(name, _)| name.contains(filter.as_str()))
    {
        let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
        let info = Validator::new(ValidationFlags::all(), Capabilities::all()).validate(&module)?;
        for entry in &module.entry_points {
            match gpu.stats(&module, &info, &entry.name) {
                Ok(stats) => println!("{name}::{} {}", entry.name, stats.join(", ")),
                Err(e) => println!("{name}::{} skipped: {e}", entry.name),
            }
        }
    }
    Ok(())
}

struct Gpu {
    _entry: ash::Entry,
    instance: ash::Instance,
    device: ash::Device,
    executables: ash::khr::pipeline_executable_properties::Device,
    name: String,
    checks: ShaderChecks,
    /// `--constant` values, given to each module that declares the override.
    constants: naga::back::PipelineConstants,
    /// The device zeroes workgroup memory itself (wgpu then asks naga for `Native`).
    native_zeroing: bool,
}

impl Gpu {
    /// The first device with the extension (discrete GPUs first), with every feature our
    /// kernels may use that it has.
    fn new(
        checks: ShaderChecks,
        constants: naga::back::PipelineConstants,
    ) -> Result<Self, Box<dyn std::error::Error>> {
        let entry = unsafe { ash::Entry::load()? };
        let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_3);
        let instance = unsafe {
            entry.create_instance(
                &vk::InstanceCreateInfo::default().application_info(&app),
                None,
            )?
        };
        let ext = ash::khr::pipeline_executable_properties::NAME;
        let mut devices = unsafe { instance.enumerate_physical_devices()? };
        devices.sort_by_key(|&d| {
            let ty = unsafe { instance.get_physical_device_properties(d) }.device_type;
            ty != vk::PhysicalDeviceType::DISCRETE_GPU
        });
        let physical = devices
            .into_iter()
            .find(|&d| {
                unsafe { instance.enumerate_device_extension_properties(d) }
                    .unwrap_or_default()
                    .iter()
                    .any(|e| e.extension_name_as_c_str() == Ok(ext))
            })
            .ok_or("no Vulkan device with VK_KHR_pipeline_executable_properties")?;
        let props = unsafe { instance.get_physical_device_properties(physical) };
        let name = props.device_name_as_c_str()?.to_string_lossy().into_owned();
        let family = unsafe { instance.get_physical_device_queue_family_properties(physical) }
            .iter()
            .position(|q| q.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .ok_or("no compute queue")? as u32;
        // Everything the device has of what naga's SPIR-V may ask for.
        let mut v11 = vk::PhysicalDeviceVulkan11Features::default();
        let mut v12 = vk::PhysicalDeviceVulkan12Features::default();
        let mut v13 = vk::PhysicalDeviceVulkan13Features::default();
        let mut features = vk::PhysicalDeviceFeatures2::default()
            .push_next(&mut v11)
            .push_next(&mut v12);
        let api = unsafe { instance.get_physical_device_properties(physical) }.api_version;
        let has_v13 = api >= vk::API_VERSION_1_3;
        if has_v13 {
            features = features.push_next(&mut v13);
        }
        unsafe { instance.get_physical_device_features2(physical, &mut features) };
        let core = features.features;
        let mut v11 = vk::PhysicalDeviceVulkan11Features::default()
            .storage_buffer16_bit_access(v11.storage_buffer16_bit_access != 0)
            .uniform_and_storage_buffer16_bit_access(
                v11.uniform_and_storage_buffer16_bit_access != 0,
            );
        let mut v12 = vk::PhysicalDeviceVulkan12Features::default()
            .shader_float16(v12.shader_float16 != 0)
            .vulkan_memory_model(v12.vulkan_memory_model != 0);
        let native_zeroing = v13.shader_zero_initialize_workgroup_memory != 0;
        let mut v13 = vk::PhysicalDeviceVulkan13Features::default()
            .shader_zero_initialize_workgroup_memory(native_zeroing);
        let mut capture = vk::PhysicalDevicePipelineExecutablePropertiesFeaturesKHR::default()
            .pipeline_executable_info(true);
        let priorities = [1.0];
        let queues = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(family)
            .queue_priorities(&priorities)];
        let extensions = [ext.as_ptr()];
        let enabled = vk::PhysicalDeviceFeatures::default()
            .robust_buffer_access(core.robust_buffer_access != 0)
            .shader_int64(core.shader_int64 != 0)
            .shader_int16(core.shader_int16 != 0);
        let mut info = vk::DeviceCreateInfo::default()
            .queue_create_infos(&queues)
            .enabled_extension_names(&extensions)
            .enabled_features(&enabled)
            .push_next(&mut v11)
            .push_next(&mut v12)
            .push_next(&mut capture);
        if has_v13 {
            info = info.push_next(&mut v13);
        }
        let device = unsafe { instance.create_device(physical, &info, None)? };
        let executables = ash::khr::pipeline_executable_properties::Device::new(&instance, &device);
        Ok(Gpu {
            _entry: entry,
            instance,
            device,
            executables,
            name,
            checks,
            constants,
            native_zeroing,
        })
    }

    /// "name=value" for each statistic of each executable of `entry`'s pipeline.
    fn stats(
        &self,
        module: &naga::Module,
        info: &naga::valid::ModuleInfo,
        entry: &str,
    ) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let stage = Some((naga::ShaderStage::Compute, entry));
        let declared = |name: &str| {
            module
                .overrides
                .iter()
                .any(|(_, o)| o.name.as_deref() == Some(name))
        };
        let constants = self
            .constants
            .iter()
            .filter(|(name, _)| declared(name))
            .map(|(name, &v)| (name.clone(), v))
            .collect();
        let (module, info) =
            naga::back::pipeline_constants::process_overrides(module, info, stage, &constants)?;
        let mut options = spv::Options::default();
        options.bounds_check_policies.index = if self.checks.bounds {
            naga::proc::BoundsCheckPolicy::Restrict
        } else {
            naga::proc::BoundsCheckPolicy::Unchecked
        };
        options.bounds_check_policies.buffer = naga::proc::BoundsCheckPolicy::Unchecked;
        options.force_loop_bounding = self.checks.loop_bounding;
        options.emit_int_div_checks = self.checks.integer_division;
        options.zero_initialize_workgroup_memory = match self.checks.zero_workgroup_memory {
            false => spv::ZeroInitializeWorkgroupMemoryMode::None,
            true if self.native_zeroing => spv::ZeroInitializeWorkgroupMemoryMode::Native,
            true => spv::ZeroInitializeWorkgroupMemoryMode::Polyfill,
        };
        let pipeline_options = spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: entry.to_string(),
        };
        let words = spv::write_vec(&module, &info, &options, Some(&pipeline_options))?;
        let d = &self.device;
        unsafe {
            let shader =
                d.create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&words), None)?;
            let (sets, layout) = self.layout(&module)?;
            let name = CString::new(entry)?;
            let stage = vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::COMPUTE)
                .module(shader)
                .name(&name);
            let create = vk::ComputePipelineCreateInfo::default()
                .stage(stage)
                .layout(layout)
                .flags(vk::PipelineCreateFlags::CAPTURE_STATISTICS_KHR);
            let built = d.create_compute_pipelines(vk::PipelineCache::null(), &[create], None);
            let result = built.map_err(|(_, e)| e).and_then(|pipelines| {
                let pipeline = pipelines[0];
                let out = self.read(pipeline);
                d.destroy_pipeline(pipeline, None);
                out
            });
            d.destroy_pipeline_layout(layout, None);
            for set in sets {
                d.destroy_descriptor_set_layout(set, None);
            }
            d.destroy_shader_module(shader, None);
            Ok(result?)
        }
    }

    /// One descriptor set layout per bind group the module declares (uniform or storage
    /// buffers, as our kernels use), and the pipeline layout over them.
    fn layout(
        &self,
        module: &naga::Module,
    ) -> Result<(Vec<vk::DescriptorSetLayout>, vk::PipelineLayout), vk::Result> {
        let mut groups: Vec<Vec<vk::DescriptorSetLayoutBinding>> = Vec::new();
        for (_, var) in module.global_variables.iter() {
            let (Some(binding), ty) = (
                &var.binding,
                match var.space {
                    naga::AddressSpace::Uniform => vk::DescriptorType::UNIFORM_BUFFER,
                    naga::AddressSpace::Storage { .. } => vk::DescriptorType::STORAGE_BUFFER,
                    _ => continue,
                },
            ) else {
                continue;
            };
            let group = binding.group as usize;
            if groups.len() <= group {
                groups.resize(group + 1, Vec::new());
            }
            groups[group].push(
                vk::DescriptorSetLayoutBinding::default()
                    .binding(binding.binding)
                    .descriptor_type(ty)
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE),
            );
        }
        let d = &self.device;
        let sets = groups
            .iter()
            .map(|b| unsafe {
                d.create_descriptor_set_layout(
                    &vk::DescriptorSetLayoutCreateInfo::default().bindings(b),
                    None,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let layout = unsafe {
            d.create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default().set_layouts(&sets),
                None,
            )?
        };
        Ok((sets, layout))
    }

    fn read(&self, pipeline: vk::Pipeline) -> Result<Vec<String>, vk::Result> {
        let mut out = Vec::new();
        let executables = unsafe {
            self.executables.get_pipeline_executable_properties(
                &vk::PipelineInfoKHR::default().pipeline(pipeline),
            )?
        };
        for index in 0..executables.len() as u32 {
            let info = vk::PipelineExecutableInfoKHR::default()
                .pipeline(pipeline)
                .executable_index(index);
            for s in unsafe { self.executables.get_pipeline_executable_statistics(&info)? } {
                let name = s
                    .name_as_c_str()
                    .map(|c| c.to_string_lossy())
                    .unwrap_or_default();
                let value = unsafe {
                    match s.format {
                        vk::PipelineExecutableStatisticFormatKHR::BOOL32 => s.value.b32.to_string(),
                        vk::PipelineExecutableStatisticFormatKHR::INT64 => s.value.i64.to_string(),
                        vk::PipelineExecutableStatisticFormatKHR::UINT64 => s.value.u64.to_string(),
                        _ => format!("{:.3}", s.value.f64),
                    }
                };
                out.push(format!("{name}={value}"));
            }
        }
        Ok(out)
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        unsafe {
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}
