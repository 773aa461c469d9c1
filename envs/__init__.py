"""Task-distribution environments; importing this package registers them with Gymnasium."""

from envs.tensor.registration import register_tensor_envs

register_tensor_envs()

try:
    from envs.mujoco.registration import register_mujoco_envs
except ImportError:  # MuJoCo extras not installed (or the MuJoCo half not present)
    pass
else:
    register_mujoco_envs()
