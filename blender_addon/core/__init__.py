"""The add-on's bpy-free core: frames, mesh arrays, camera parameters, pixels, engine setup and jobs.

Nothing here imports bpy, so it is tested with plain Python (tests/addon/); the Blender modules one level up
turn its results into Blender data.
"""
