"""Typed requests and responses of protocol v1.

The reconstruction parameters are generated from the engine's own option dataclasses (ReconOptions,
ReliefOptions, BlenderCamera), so every option of `betterdepth mesh` is a job parameter with the same name and
default, and their checks (`__post_init__`) run when a job is submitted, not when it runs.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from betterdepth_engine.recon import MESH_FORMATS, BlenderCamera, ReconOptions, ReliefOptions

TASKS = ("estimate", "mesh", "relief")
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobStage = Literal["loading", "base", "refine", "ensemble", "reconstruct", "write"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt parameter is an error, not silently ignored


def model_from_dataclass(cls: type, name: str, exclude: tuple[str, ...] = ()) -> type[BaseModel]:
    """A pydantic model with the dataclass's fields, types, defaults, help texts and choices (from the fields'
    metadata, as the CLI uses them); nested option dataclasses become nested models."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name in exclude:
            continue
        annotation = hints[item.name]
        if item.metadata.get("choices"):
            annotation = Literal[tuple(item.metadata["choices"])]
        elif dataclasses.is_dataclass(annotation):
            annotation = model_from_dataclass(annotation, annotation.__name__)
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            args = [model_from_dataclass(a, a.__name__) if dataclasses.is_dataclass(a) else a
                    for a in typing.get_args(annotation)]
            annotation = typing.Union[tuple(args)]
        default = item.default if item.default is not dataclasses.MISSING else None
        fields[item.name] = (annotation, Field(default=default, description=item.metadata.get("help")))
    return create_model(name, __base__=Strict, **fields)


BlenderCameraParams = model_from_dataclass(BlenderCamera, "BlenderCameraParams")
# The task decides the mode; the relief shape has its own section.
ReconParams = model_from_dataclass(ReconOptions, "MeshParams", exclude=("mode", "relief"))
ReliefShapeParams = model_from_dataclass(ReliefOptions, "ReliefShapeParams")


class MeshRequest(ReconParams):  # type: ignore[misc, valid-type]
    formats: list[Literal[MESH_FORMATS]] = Field(  # type: ignore[valid-type]
        default_factory=list, description="extra mesh files beside mesh.npz: ply, glb, obj")
    preview: bool = Field(default=False, description="also render mesh_preview.png (software renderer)")


class ReliefRequest(ReliefShapeParams):  # type: ignore[misc, valid-type]
    solid: bool = Field(default=True, description="the closed relief solid as mesh.npz")
    heightmap: bool = Field(default=True, description="height.exr (float32) and height.png (16-bit)")


class ImageSource(Strict):
    """Exactly one of: a file the engine may read (inside an --allow-dir folder), or an earlier upload."""

    path: str | None = None
    upload_id: str | None = None


class BasePredictionSource(Strict):
    """A precomputed base prediction (plug-and-play with any depth model): an upload of .npy, 16-bit .png or .exr."""

    upload_id: str
    space: Literal["disparity", "depth"] = "disparity"


class DisparityUpload(Strict):
    """A disparity the client already holds (e.g. an earlier job's disparity.npy kept with a .blend), uploaded as
    .npy, 16-bit .png or .exr: used as the job's depth as it is, so no model runs."""

    upload_id: str


class EstimateParams(Strict):
    base: str = Field(default="default", description="'default', an alias, a local folder or a hub id")
    base_prediction: BasePredictionSource | None = None
    refiner: str = Field(default="default", description="'default', 'none', 'marigold', a folder or a hub id")
    steps: int | None = Field(default=None, ge=1, le=1000)
    ensemble_size: int | None = Field(default=None, ge=1, le=64)
    ensemble_reduction: Literal["mean", "median"] = "mean"
    processing_resolution: int | None = Field(default=None, ge=0, le=8192)
    strength: float | None = Field(default=None, gt=0, le=1)
    noise: Literal["random", "zero"] | None = Field(
        default=None, description="the refiner's starting noise: a seeded sample, or zero (its mean; the shipped "
                                  "refiner's default). Ensembles need random")
    guard: bool = Field(default=True, description="the refiner's guard against texture and halos where it has one "
                                                 "(the shipped refiner); false: its raw output, as in the paper")
    depth_range_ratio: float = Field(default=10.0, gt=1)
    seed: int = Field(default=0, ge=0, le=2**63 - 1)


class JobRequest(Strict):
    task: Literal[TASKS]  # type: ignore[valid-type]
    image: ImageSource | None = None
    reuse_job: str | None = Field(default=None, description="reuse this succeeded job's disparity: no model runs")
    reuse_disparity: DisparityUpload | None = Field(
        default=None, description="mesh/relief on this uploaded disparity (a job's disparity.npy kept by the "
                                  "client): no model runs; the image is optional (colours, EXIF focal, size check)")
    estimate: EstimateParams = Field(default_factory=EstimateParams)
    mesh: MeshRequest = Field(default_factory=MeshRequest)  # type: ignore[valid-type]
    relief: ReliefRequest = Field(default_factory=ReliefRequest)  # type: ignore[valid-type]
    idempotency_key: str | None = Field(default=None, max_length=200)


class ErrorInfo(BaseModel):
    code: str
    message: str
    hint: str = ""


class JobStatus(BaseModel):
    job_id: str
    task: str
    state: JobState
    stage: JobStage | None = None
    step: int | None = Field(default=None, description="denoising step done, during the refine stage")
    total_steps: int | None = None
    fraction: float = Field(description="0..1 of the job's work, from the pipeline's progress")
    eta_s: float | None = None
    queue_position: int | None = Field(default=None, description="jobs ahead of this one; None unless queued")
    message: str = ""
    error: ErrorInfo | None = None
    results: list[str] = Field(default_factory=list, description="files available now (preview.png while running)")
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None


class Submitted(BaseModel):
    job_id: str
    state: JobState
    queue_position: int | None = None
    existing: bool = Field(default=False, description="true when the idempotency key matched an earlier job")


class Upload(BaseModel):
    upload_id: str
    size: int
    sha256: str


class Memory(BaseModel):
    rss_bytes: int
    cuda_allocated_bytes: int | None = None
    cuda_reserved_bytes: int | None = None
    cuda_free_bytes: int | None = None
    cuda_total_bytes: int | None = None


class LoadedModel(BaseModel):
    kind: Literal["base", "refiner"]
    name: str


class Limits(BaseModel):
    max_upload_bytes: int
    max_image_side: int


class Health(BaseModel):
    engine_version: str
    protocol: str
    device: str
    memory: Memory
    loaded_models: list[LoadedModel]
    queue_length: int
    running_job: str | None
    limits: Limits
    last_unload: dict | None = Field(default=None, description="memory before/after the last unload")


class Unloaded(BaseModel):
    unloaded: list[LoadedModel]
    memory_before: Memory
    memory_after: Memory


class JobList(BaseModel):
    jobs: list[JobStatus]


class Ok(BaseModel):
    ok: bool = True
