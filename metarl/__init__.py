"""metarl: meta-learning in PyTorch -- few-shot learning and meta-RL on one engine."""

import os

__version__ = "0.1.0"

# Headless rendering (videos of MuJoCo tasks): EGL unless the user chose a GL backend or has a
# display. Set here, the package every other one imports first, because MuJoCo reads it once,
# when `mujoco` is first imported (`envs.mujoco` imports `metarl` before `mujoco`).
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"
