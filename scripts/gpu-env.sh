# Sourced by the scripts that run on a GPU machine without this project's
# build (scripts/gpu-check.sh, bench/gpu-bench.sh): the bundle's libraries
# first, then CUDA's, then the NVIDIA libraries of PyTorch's wheels (NCCL,
# cuDNN, NVRTC, and cuBLAS where the toolkit lacks it).
#
#   source scripts/gpu-env.sh BUNDLE
gpu_env_bundle="$1"
gpu_env_libs="$gpu_env_bundle/lib:/usr/local/cuda/lib64"
for d in $("${PYTHON:-python3}" - <<'PY'
import glob, os
try:
    import nvidia
    for base in nvidia.__path__:
        for lib in sorted(glob.glob(os.path.join(base, "**", "lib"), recursive=True)):
            print(lib)
except ImportError:
    pass
PY
); do gpu_env_libs="$gpu_env_libs:$d"; done
export LD_LIBRARY_PATH="$gpu_env_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export NCCL_NVLS_ENABLE=0  # never NVLink multicast on shared machines
export PYTHONUNBUFFERED=1
unset gpu_env_bundle gpu_env_libs
