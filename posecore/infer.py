"""`python -m posecore.infer SOURCE --checkpoint CKPT [--params NAME] [--detector DET] [--out DIR]
[--no-track] [--no-video] [--flip]`: the command line of posecore.inference.infer.

In Python call `posecore.infer(...)` (or posecore.inference.infer); this module is only the
command line, so importing it is never needed.
"""
import sys

from posecore.inference import main

if __name__ == "__main__":
    sys.exit(main())
