"""Mesh Sequence: the frames of an image sequence in one consistent scale, as one mesh per frame or as one mesh
with a shape key per frame.

A depth model's disparity is affine-invariant per frame, and the engine lifts each frame with its own depth
range, so per-frame meshes of a static shot breathe. Here every frame's disparity is fitted (scale and shift,
robustly) to the reference frame's, and lifted with the reference frame's own depth range
(core.alignment.chain_to_reference).

Output:
- OBJECTS: one mesh per frame (each cut at its own depth jumps), visible on its own scene frame only.
- SHAPE_KEYS: one mesh with the reference frame's grid and cut; frame N's key moves every vertex along its
  pixel's ray to frame N's depth at that pixel (the same placement the per-frame mesh gets), and a driver
  (`frame == N`) shows key N on scene frame N.

Frames run one engine job after another. In the UI each job runs on a worker thread and a modal timer builds
each finished frame, with progress; Esc or Cancel stops the sequence and keeps the finished frames. In
background mode (`blender -b`, scripts) the same steps run on the main thread (timers never fire there).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import engine, scene_align, scene_build
from .core.alignment import AlignmentError, align_vertices, chain_to_reference, engine_lift
from .core.camera import params_from_intrinsics
from .core.frames import opencv_to_blender_camera
from .core.jobs import EngineJob, JobError, JobRequest
from .core.mesh_arrays import load_mesh_npz, mesh_buffers
from .core.provenance import file_sha256, record
from .inputs import ENGINE_SUFFIXES
from .preferences import get_preferences

OUTPUTS = (
    ("OBJECTS", "One Mesh per Frame", "A mesh per frame, each cut at its own depth jumps, shown on its frame"),
    ("SHAPE_KEYS", "Shape Keys", "One mesh (the reference frame's grid) with a shape key per frame, driven so "
                                 "that scene frame N shows key N"),
)


def sequence_files(folder: Path, first: int, count: int) -> list[Path]:
    """The frames: the folder's images (formats the engine reads) sorted by name, from `first`, `count` of them
    (0: all)."""
    if not folder.is_dir():
        raise JobError("BAD_IMAGE", f"No folder at '{folder}'.", "Choose the folder that holds the frames.")
    files = sorted(path for path in folder.iterdir() if path.suffix.lower() in ENGINE_SUFFIXES)
    files = files[first:first + count] if count else files[first:]
    if not files:
        raise JobError("BAD_IMAGE", f"No frames in '{folder}' from number {first}.",
                       "Frames are PNG, JPEG, TIFF, BMP or WebP files, in name order.")
    return files


def _visible_on_frame_only(obj: bpy.types.Object, frame: int) -> None:
    """Keyframes that show the object on `frame` alone (booleans hold their keyed value: hidden before and
    after)."""
    for key_frame, hidden in ((frame - 1, True), (frame, False), (frame + 1, True)):
        obj.hide_viewport = obj.hide_render = hidden
        obj.keyframe_insert("hide_viewport", frame=key_frame)
        obj.keyframe_insert("hide_render", frame=key_frame)


def _drive_on_frame(key_block, frame: int) -> None:
    """Key value 1 on scene frame `frame`, 0 elsewhere (a simple expression: no Python needed to evaluate it)."""
    curve = key_block.driver_add("value")
    curve.driver.type = "SCRIPTED"
    curve.driver.expression = f"frame == {frame}"


@dataclass
class SequenceState:
    """One run's progress, kept between the modal timer's ticks."""

    frames: list[Path]
    order: list[int]  # frame indices, reference first
    folder: Path  # the run's temporary folder
    label: str
    position: int = 0  # in `order`: the frame whose job runs now
    job: EngineJob | None = None
    request: dict = field(default_factory=dict)
    reference_disparity: np.ndarray | None = None
    reference_lift: object = None
    reference_vertices: np.ndarray | None = None  # OpenCV frame: the shape-key mesh's grid
    intrinsics: dict | None = None
    camera: bpy.types.Object | None = None
    target: bpy.types.Object | None = None  # the shape-key mesh
    built: list = field(default_factory=list)  # per frame: its object, or its shape key's name
    depths: dict = field(default_factory=dict)
    stop: JobError | None = None  # why the run stopped early (failure or cancel)

    @property
    def finished(self) -> bool:
        return self.stop is not None or self.position >= len(self.order)


class BETTERDEPTH_OT_mesh_sequence(bpy.types.Operator):
    """Meshes of an image sequence (a folder of frames) in one consistent scale: every frame is fitted to the
    reference frame's depth. One mesh per frame, or one mesh with a shape key per frame"""

    bl_idname = "betterdepth.mesh_sequence"
    bl_label = "Mesh Sequence"
    bl_options = {"REGISTER", "UNDO"}

    directory: StringProperty(name="Frames Folder", subtype="DIR_PATH")
    first: IntProperty(name="First", default=0, min=0, description="Index of the first frame (name order)")
    count: IntProperty(name="Frames", default=0, min=0, description="How many frames (0: all)")
    reference: IntProperty(name="Reference", default=0, min=0,
                           description="The frame (counted from First) whose scale the others follow")
    consistent_scale: BoolProperty(name="Consistent Scale", default=True,
                                   description="Fit every frame to the reference frame (off: each frame's own "
                                               "depth range, as single images get)")
    output: EnumProperty(name="Output", items=OUTPUTS, default="OBJECTS")
    min_angle_deg: FloatProperty(name="Cut Angle", default=4.0, min=0.0, max=89.0)
    fov_deg: FloatProperty(name="Field of View", default=0.0, min=0.0, max=179.0,
                           description="Across the longer side (0: the frames' EXIF, else 55)")
    frame_start: IntProperty(name="Start Frame", default=1, description="The scene frame of the first mesh")
    from_dialog: BoolProperty(options={"HIDDEN", "SKIP_SAVE"},
                              description="Set by invoke before the file browser: execute invokes the run again")

    # -- entry points ---------------------------------------------------------------------------------------
    def invoke(self, context, event):
        if not self.directory:
            self.directory = context.scene.betterdepth_inputs.sequence_directory
        if not self.directory:
            self.from_dialog = True
            context.window_manager.fileselect_add(self)  # pick the frames' folder, then execute
            return {"RUNNING_MODAL"}
        if bpy.app.background:
            return self.execute(context)
        return self._start_modal(context)

    def execute(self, context):
        if self.from_dialog and context.window is not None:
            # After the file browser: go on as a modal operator, so the UI stays responsive.
            from .operators import set_properties

            return bpy.ops.betterdepth.mesh_sequence("INVOKE_DEFAULT", **{**set_properties(self),
                                                                          "from_dialog": False})
        from .operators import ActiveJob

        state = self._begin(context)
        if state is None:
            return {"CANCELLED"}
        try:
            while not state.finished:
                job = self._start_frame(context, state)
                try:
                    kind, payload = job.poll(partial(self._print_progress, state), lambda path: None, block=True)
                except KeyboardInterrupt:  # Ctrl+C in background mode: the finished frames stay
                    job.cancel()
                    job.join()
                    state.stop = JobError("CANCELLED", "The sequence was stopped.", "")
                    break
                job.join()
                self._finish_frame(context, state, kind, payload)
        finally:
            ActiveJob.job = None
            shutil.rmtree(state.folder, ignore_errors=True)
        return self._conclude(context, state)

    # -- the interactive path -------------------------------------------------------------------------------
    def _start_modal(self, context):
        from .operators import ActiveJob, begin_modal_ui

        if ActiveJob.running():
            self.report({"WARNING"}, "BetterDepth: a job is already running; cancel it or wait.")
            return {"CANCELLED"}
        state = self._begin(context)
        if state is None:
            return {"CANCELLED"}
        self._state = state
        self._start_frame(context, state)
        begin_modal_ui(self, context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        state = self._state
        if event.type == "ESC" and event.value == "PRESS":
            state.job.cancel()  # the job ends as cancelled; the next tick stops the run
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            outcome = state.job.poll(partial(self._show_progress, context, state), lambda path: None, block=False)
            if outcome is None:
                return {"PASS_THROUGH"}
            self._finish_frame(context, state, *outcome)
            if not state.finished:
                self._start_frame(context, state)
                return {"PASS_THROUGH"}
        except Exception as error:  # noqa: BLE001 - never leave a job or a timer behind
            state.job.cancel()
            state.stop = JobError.from_exception(error)
        self._end_ui(context)
        shutil.rmtree(state.folder, ignore_errors=True)
        return self._conclude(context, state)

    def cancel(self, context):  # Blender aborts the modal operator (e.g. a file is loaded)
        self._state.job.cancel()
        self._end_ui(context)
        shutil.rmtree(self._state.folder, ignore_errors=True)

    def _show_progress(self, context, state: SequenceState, progress) -> None:
        done = (state.position + progress.fraction) / len(state.order)
        text = (f"BetterDepth {state.label}: frame {state.position + 1}/{len(state.order)}, {progress.message} "
                f"({done:.0%}) - Esc to cancel")
        context.window_manager.progress_update(int(done * 100))
        context.workspace.status_text_set(text)
        for window in context.window_manager.windows:
            for area in window.screen.areas:
                if area.type in ("VIEW_3D", "IMAGE_EDITOR"):
                    area.tag_redraw()

    def _end_ui(self, context) -> None:
        from .operators import end_modal_ui

        end_modal_ui(self, context)

    @staticmethod
    def _print_progress(state: SequenceState, progress) -> None:
        print(f"BetterDepth {state.label}: frame {state.position + 1}/{len(state.order)}: {progress.message} "
              f"({progress.fraction:.0%})", flush=True)

    # -- the steps both paths share -------------------------------------------------------------------------
    def _begin(self, context) -> SequenceState | None:
        try:
            frames = sequence_files(Path(bpy.path.abspath(self.directory)), self.first, self.count)
            if self.reference >= len(frames):
                raise JobError("BAD_PARAMS", f"Reference frame {self.reference} is past the {len(frames)} frames.",
                               "Pick a reference among the frames.")
        except JobError as error:
            self.report({"ERROR"}, f"BetterDepth: {error.report()}")
            return None
        order = [self.reference] + [index for index in range(len(frames)) if index != self.reference]
        folder = Path(tempfile.mkdtemp(prefix="sequence-", dir=engine.user_dir()))
        label = Path(bpy.path.abspath(self.directory)).name or "sequence"
        return SequenceState(frames, order, folder, label)

    def _start_frame(self, context, state: SequenceState) -> EngineJob:
        from .operators import ActiveJob

        prefs = get_preferences(context)
        mesh = {"colors": "normal", "min_angle_deg": self.min_angle_deg, "far_near_ratio": prefs.far_near_ratio}
        if self.fov_deg:
            mesh["fov_deg"] = self.fov_deg
        index = state.order[state.position]
        request = JobRequest("mesh", state.frames[index], estimate=prefs.estimate_options(), mesh=mesh)
        state.request = {"estimate": request.estimate, "mesh": mesh}
        state.job = EngineJob(partial(engine.connect, engine.settings(context)), request,
                              state.folder / f"{index:05d}")
        state.job.start()
        ActiveJob.job, ActiveJob.label = state.job, f"{state.label}: frame {state.position + 1}/{len(state.order)}"
        return state.job

    def _finish_frame(self, context, state: SequenceState, kind: str, payload) -> None:
        """Build the frame that just finished (main thread), or stop the run with the job's error."""
        path = state.frames[state.order[state.position]]
        if kind != "succeeded":
            state.stop = payload
            return
        try:
            self._build_frame(context, state, payload, path)
        except (JobError, AlignmentError, ValueError) as error:
            state.stop = JobError("RESULT_ERROR", f"Could not build frame {path.name} ({error}).",
                                  "The finished frames are kept.")
            return
        state.position += 1
        context.window_manager.progress_update(int(100 * state.position / len(state.order)))

    def _build_frame(self, context, state: SequenceState, files: dict, path: Path) -> None:
        index = state.order[state.position]
        meta = json.loads(files["meta.json"].read_text())
        disparity = np.load(files["disparity.npy"], allow_pickle=False)
        arrays = load_mesh_npz(files["mesh.npz"])
        if state.reference_disparity is None:
            state.reference_disparity = disparity
            state.reference_lift = engine_lift(meta["mesh"]["depth_range"])
            state.intrinsics = meta["mesh"]["camera"]
            state.camera = scene_build.new_camera(
                context, f"{state.label} camera", params_from_intrinsics(state.intrinsics),
                int(state.intrinsics["width"]), int(state.intrinsics["height"]))
            context.view_layer.update()
        fit = None
        if self.consistent_scale:
            try:
                fit = state.reference_lift if index == self.reference else \
                    chain_to_reference(disparity, state.reference_disparity, state.reference_lift)
            except AlignmentError as error:
                self.report({"WARNING"}, f"BetterDepth: frame {path.name} keeps its own scale ({error}).")
        lift = fit or engine_lift(meta["mesh"]["depth_range"])
        state.depths[index] = lift.depth(disparity)  # the frame's depth map in the scale its mesh got
        parameters = {
            "source": "SEQUENCE", "operator": "mesh_sequence", "label": state.label, "frame_index": index,
            "reference_index": self.reference, "engine_job": state.job.job_id, "request": state.request,
            "engine": meta, "sequence_fit": None if fit is None else fit.to_dict(), "output": self.output,
            "provenance": record(task="mesh", source="SEQUENCE", source_path=str(path.resolve()),
                                 sent_sha256=file_sha256(path), camera={"name": state.camera.name},
                                 request=state.request, meta=meta, engine_job=state.job.job_id),
        }
        if self.output == "SHAPE_KEYS":
            self._add_shape_key(context, state, arrays, disparity, lift, index, parameters)
            return
        if fit is not None:
            arrays = {**arrays, "vertices": align_vertices(arrays["vertices"], meta["mesh"]["camera"], disparity,
                                                           fit)[0]}
        obj = self._frame_object(context, f"{state.label} {index:04d}", arrays, state.camera)
        if fit is not None:
            scene_align.refresh_normal_colors(obj.data, scene_build.NORMAL_COLORS)
        scene_build.store_parameters(obj, parameters)
        _visible_on_frame_only(obj, self.frame_start + index)
        state.built.append(obj)

    def _add_shape_key(self, context, state: SequenceState, arrays, disparity, lift, index, parameters) -> None:
        """The reference frame makes the mesh (its grid, cut and basis); every frame adds its key: the grid's
        vertices moved along their rays to this frame's depth at their pixels."""
        if state.target is None:
            state.reference_vertices = arrays["vertices"]
            arrays = {**arrays, "vertices": align_vertices(arrays["vertices"], state.intrinsics, disparity,
                                                           lift)[0]}
            state.target = self._frame_object(context, f"{state.label} shape keys", arrays, state.camera)
            state.target.shape_key_add(name="Basis", from_mix=False)
            scene_build.store_parameters(state.target, {**parameters, "frames": {}})
        vertices, _ = align_vertices(state.reference_vertices, state.intrinsics, disparity, lift)
        frame = self.frame_start + index
        key = state.target.shape_key_add(name=f"frame {frame:04d}", from_mix=False)
        key.data.foreach_set("co", opencv_to_blender_camera(vertices).ravel())
        _drive_on_frame(key, frame)
        stored = scene_build.read_parameters(state.target)
        stored["frames"][key.name] = {name: parameters[name] for name in ("frame_index", "engine_job",
                                                                          "sequence_fit", "provenance")}
        scene_build.store_parameters(state.target, stored)
        state.built.append(key.name)

    def _conclude(self, context, state: SequenceState) -> set[str]:
        built = len(state.built)
        if state.stop is not None:
            level = "WARNING" if state.stop.code == "CANCELLED" else "ERROR"
            self.report({level}, f"BetterDepth: {state.stop.report()} ({built} of {len(state.order)} frames built "
                                 "and kept)")
            return {"FINISHED"} if built else {"CANCELLED"}
        # Scale change between neighbouring frames: the median per-pixel depth ratio.
        depths = state.depths
        changes = [abs(float(np.nanmedian(depths[index] / depths[index - 1])) - 1)
                   for index in range(1, len(state.frames))]
        largest = max(changes, default=0.0)
        scene = context.scene
        scene.frame_start, scene.frame_end = self.frame_start, self.frame_start + len(state.frames) - 1
        what = (f"{built} shape keys on '{state.target.name}'" if self.output == "SHAPE_KEYS"
                else f"{built} frame meshes")
        self.report({"INFO"}, f"BetterDepth: {what} from '{state.label}'; largest frame-to-frame scale change "
                              f"(median depth ratio) {largest:.2%}")
        return {"FINISHED"}

    @staticmethod
    def _frame_object(context, name: str, arrays: dict, camera) -> bpy.types.Object:
        mesh = scene_build.build_mesh(name, mesh_buffers(arrays))
        obj = scene_build.link_object(context, name, mesh)
        obj.matrix_world = camera.matrix_world.copy()
        return obj


CLASSES = (BETTERDEPTH_OT_mesh_sequence,)
