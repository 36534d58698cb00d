"""BetterDepth engine: base depth estimation, diffusion refinement and reconstruction.

The engine never imports bpy; the Blender extension talks to it over a process boundary.
"""

__version__ = "0.1.0"
