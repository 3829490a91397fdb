# Lit configuration: tests under test/ mirror dialects/, passes/, frontends/.
import os

import lit.formats
from lit.llvm import llvm_config

config.name = "veomni"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.veomni_obj_root, "test")
config.excludes = ["unit", "Inputs", "CMakeLists.txt", "lit.cfg.py",
                   "lit.site.cfg.py"]

llvm_config.use_default_substitutions()
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
config.substitutions.append(("%veomni_python", config.python_executable))
config.substitutions.append(("%veomni_src", config.veomni_src_root))
config.substitutions.append(("%veomni_bin", config.veomni_tools_dir))
llvm_config.add_tool_substitutions(["veomni-opt", "veomni-import",
                                    "veomni-compile", "veomni-run",
                                    "veomni-tokenize"],
                                   [config.veomni_tools_dir])

# A machine with an NVIDIA GPU: tests of the no-GPU errors do not apply.
import shutil
import subprocess
if shutil.which("nvidia-smi"):
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
        if listed.returncode == 0 and "GPU" in listed.stdout:
            config.available_features.add("cuda-gpu")
    except (OSError, subprocess.SubprocessError):
        pass
