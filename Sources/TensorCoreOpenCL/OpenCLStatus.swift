import CInferenceKitOpenCL
import TensorCore

/// OpenCL status codes and their conversion into ``TensorError``.
///
/// Every OpenCL call in this module goes through ``check(_:_:)``, so a failure
/// always surfaces as `TensorError(.deviceFailure, …, underlying: "clXxx: CL_STATUS_NAME")`.
package enum OpenCLStatus {
    /// `CL_PLATFORM_NOT_FOUND_KHR`: the ICD loader found no installed platform (no `.icd` file).
    package static let platformNotFoundKHR: Int32 = -1001

    /// What to install when no platform or device exists.
    package static let installHint =
        "install an OpenCL driver (ICD): `pocl-opencl-icd` for CPUs (Debian/Ubuntu: apt-get install pocl-opencl-icd), " +
        "or your GPU vendor's ICD — `nvidia-opencl-icd` (NVIDIA), `intel-opencl-icd` (Intel), ROCm's `rocm-opencl-runtime` " +
        "or `mesa-opencl-icd` (AMD) — and check that /etc/OpenCL/vendors lists it"

    /// The symbolic name of an OpenCL status code (`CL_OUT_OF_RESOURCES`), or `CL_STATUS(<n>)` when unknown.
    package static func name(_ status: Int32) -> String {
        names[status] ?? "CL_STATUS(\(status))"
    }

    /// Throws `deviceFailure` naming `call` and the status when `status` is not `CL_SUCCESS`.
    ///
    /// Allocation failures map to ``TensorError/Code/outOfMemory`` so callers can react to them.
    package static func check(_ status: Int32, _ call: String, _ context: @autoclosure () -> String = "") throws {
        guard status != CL_SUCCESS else { return }
        throw error(status, call, context())
    }

    /// The error for a failed call.
    package static func error(_ status: Int32, _ call: String, _ context: String = "") -> TensorError {
        let underlying = "\(call): \(name(status))"
        let what = context.isEmpty ? "" : " while \(context)"
        switch status {
        case CL_MEM_OBJECT_ALLOCATION_FAILURE, CL_OUT_OF_HOST_MEMORY:
            return TensorError(.outOfMemory, "OpenCL could not allocate memory\(what); use smaller tensors or free device buffers", underlying: underlying)
        case CL_OUT_OF_RESOURCES:
            return TensorError(.deviceFailure, "the OpenCL device ran out of resources\(what); use smaller tensors, or check the driver", underlying: underlying)
        default:
            return TensorError(.deviceFailure, "OpenCL call \(call) failed with \(name(status))\(what)", underlying: underlying)
        }
    }

    /// The error for `clGetPlatformIDs` / `clGetDeviceIDs` finding nothing usable.
    ///
    /// `CL_PLATFORM_NOT_FOUND_KHR` (-1001) is what the ICD loader returns when no driver is installed;
    /// it becomes ``TensorError/Code/backendUnavailable`` with installation advice rather than a device failure.
    package static func discoveryError(_ status: Int32, _ call: String) -> TensorError {
        switch status {
        case platformNotFoundKHR, CL_DEVICE_NOT_FOUND, CL_SUCCESS:
            return TensorError(.backendUnavailable, "no OpenCL platform or device is installed on this machine; \(installHint)", underlying: "\(call): \(name(status))")
        default:
            return TensorError(.backendUnavailable, "OpenCL device discovery failed (\(name(status))); check the OpenCL driver installation — \(installHint)", underlying: "\(call): \(name(status))")
        }
    }

    /// OpenCL 1.2–3.0 status codes plus the common KHR extension codes.
    private static let names: [Int32: String] = [
        0: "CL_SUCCESS",
        -1: "CL_DEVICE_NOT_FOUND",
        -2: "CL_DEVICE_NOT_AVAILABLE",
        -3: "CL_COMPILER_NOT_AVAILABLE",
        -4: "CL_MEM_OBJECT_ALLOCATION_FAILURE",
        -5: "CL_OUT_OF_RESOURCES",
        -6: "CL_OUT_OF_HOST_MEMORY",
        -7: "CL_PROFILING_INFO_NOT_AVAILABLE",
        -8: "CL_MEM_COPY_OVERLAP",
        -9: "CL_IMAGE_FORMAT_MISMATCH",
        -10: "CL_IMAGE_FORMAT_NOT_SUPPORTED",
        -11: "CL_BUILD_PROGRAM_FAILURE",
        -12: "CL_MAP_FAILURE",
        -13: "CL_MISALIGNED_SUB_BUFFER_OFFSET",
        -14: "CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST",
        -15: "CL_COMPILE_PROGRAM_FAILURE",
        -16: "CL_LINKER_NOT_AVAILABLE",
        -17: "CL_LINK_PROGRAM_FAILURE",
        -18: "CL_DEVICE_PARTITION_FAILED",
        -19: "CL_KERNEL_ARG_INFO_NOT_AVAILABLE",
        -30: "CL_INVALID_VALUE",
        -31: "CL_INVALID_DEVICE_TYPE",
        -32: "CL_INVALID_PLATFORM",
        -33: "CL_INVALID_DEVICE",
        -34: "CL_INVALID_CONTEXT",
        -35: "CL_INVALID_QUEUE_PROPERTIES",
        -36: "CL_INVALID_COMMAND_QUEUE",
        -37: "CL_INVALID_HOST_PTR",
        -38: "CL_INVALID_MEM_OBJECT",
        -39: "CL_INVALID_IMAGE_FORMAT_DESCRIPTOR",
        -40: "CL_INVALID_IMAGE_SIZE",
        -41: "CL_INVALID_SAMPLER",
        -42: "CL_INVALID_BINARY",
        -43: "CL_INVALID_BUILD_OPTIONS",
        -44: "CL_INVALID_PROGRAM",
        -45: "CL_INVALID_PROGRAM_EXECUTABLE",
        -46: "CL_INVALID_KERNEL_NAME",
        -47: "CL_INVALID_KERNEL_DEFINITION",
        -48: "CL_INVALID_KERNEL",
        -49: "CL_INVALID_ARG_INDEX",
        -50: "CL_INVALID_ARG_VALUE",
        -51: "CL_INVALID_ARG_SIZE",
        -52: "CL_INVALID_KERNEL_ARGS",
        -53: "CL_INVALID_WORK_DIMENSION",
        -54: "CL_INVALID_WORK_GROUP_SIZE",
        -55: "CL_INVALID_WORK_ITEM_SIZE",
        -56: "CL_INVALID_GLOBAL_OFFSET",
        -57: "CL_INVALID_EVENT_WAIT_LIST",
        -58: "CL_INVALID_EVENT",
        -59: "CL_INVALID_OPERATION",
        -60: "CL_INVALID_GL_OBJECT",
        -61: "CL_INVALID_BUFFER_SIZE",
        -62: "CL_INVALID_MIP_LEVEL",
        -63: "CL_INVALID_GLOBAL_WORK_SIZE",
        -64: "CL_INVALID_PROPERTY",
        -65: "CL_INVALID_IMAGE_DESCRIPTOR",
        -66: "CL_INVALID_COMPILER_OPTIONS",
        -67: "CL_INVALID_LINKER_OPTIONS",
        -68: "CL_INVALID_DEVICE_PARTITION_COUNT",
        -69: "CL_INVALID_PIPE_SIZE",
        -70: "CL_INVALID_DEVICE_QUEUE",
        -71: "CL_INVALID_SPEC_ID",
        -72: "CL_MAX_SIZE_RESTRICTION_EXCEEDED",
        -1000: "CL_INVALID_GL_SHAREGROUP_REFERENCE_KHR",
        -1001: "CL_PLATFORM_NOT_FOUND_KHR",
        -1057: "CL_DEVICE_PARTITION_FAILED_EXT",
        -1058: "CL_INVALID_PARTITION_COUNT_EXT",
        -1059: "CL_INVALID_PARTITION_NAME_EXT",
    ]
}
