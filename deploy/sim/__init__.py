"""The simulated robots: the virtual robot (protocol v1 on a pty, or in the host's process) and
the STS bus emulator. They need MuJoCo (the ``train`` extra) and are never imported by the code
the robot's computer runs, the rest of ``deploy/`` (the one exception, ``robotac calibrate
--virtual``, imports the emulator inside that branch). pyproject.toml's import-linter contracts
check both.
"""
