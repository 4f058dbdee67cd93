"""The augmentation ladder on NVIDIA DALI (``aug_backend: dali``): the same levels as
:mod:`rethink.core.augment.ladder` (its docstring says how the two backends differ), as a DALI graph fed a whole
uint8 batch by an external source. The graph is a plain function of a DataNode, apart from the
``@pipeline_def`` that feeds it, so that one graph serves file readers and external sources."""
from __future__ import annotations

import torch

from .ladder import AUTO_POLICY, FILL_VALUE, RANDAUGMENT_M, RANDAUGMENT_N, SCALE_RANGES, check_level


def dali_augment_graph(images, level: str, image_size: int):
    """The DALI augmentation graph: uint8 HWC ``DataNode`` -> float CHW ``DataNode`` in [0,1].

    A plain function of a DataNode (no ``@pipeline_def``) so a file reader + decoder can
    feed it later. The images must already be ``image_size x image_size``: the scale
    jitter resizes both sides to ``s * image_size``, so a reader of other sizes should
    resize/crop to that square first. ``images`` may live on the CPU or GPU; random parameters are drawn
    on the CPU (DALI argument inputs). S2-S4 use DALI's auto_aug, which needs the
    enclosing pipeline to be defined with ``enable_conditionals=True``.
    Order (as in :class:`KorniaAugment`): flip, scale jitter + crop, auto policy.
    """
    from nvidia.dali import fn, types

    check_level(level)
    size = int(image_size)
    if level != "S0":
        flip = fn.random.coin_flip(probability=0.5)
        images = fn.flip(images, horizontal=flip)
        lo, hi = SCALE_RANGES[level]
        s = fn.random.uniform(range=[lo, hi])
        images = fn.resize(images, resize_x=s * size, resize_y=s * size)
        # window position uniform over the valid range; "pad" zero-fills a zoomed-out image
        images = fn.crop(images, crop=(size, size),
                         crop_pos_x=fn.random.uniform(range=[0.0, 1.0]),
                         crop_pos_y=fn.random.uniform(range=[0.0, 1.0]),
                         out_of_bounds_policy="pad", fill_values=FILL_VALUE)
        kind = AUTO_POLICY[level]
        if kind is not None:
            from nvidia.dali.auto_aug import auto_augment, rand_augment

            # (DALI 2.4's auto_aug still calls fn.experimental.equalize/filter and emits a
            # DeprecationWarning per graph build, under its own forced "default" filter.)
            if kind == "autoaugment":
                images = auto_augment.auto_augment(images, policy_name="image_net",
                                                   shape=(size, size), fill_value=FILL_VALUE)
            else:
                images = rand_augment.rand_augment(images, n=RANDAUGMENT_N, m=RANDAUGMENT_M,
                                                   shape=(size, size), fill_value=FILL_VALUE)
    return fn.crop_mirror_normalize(images, dtype=types.FLOAT, output_layout="CHW",
                                    mean=[0.0], std=[255.0])


def dali_placement(device: str) -> tuple[str, int | None]:
    dev = torch.device(device)
    if dev.type == "cpu":
        return "cpu", None
    if dev.type == "cuda":
        return "gpu", dev.index if dev.index is not None else torch.cuda.current_device()
    raise ValueError(f"device must be 'cpu' or 'cuda[:N]'; got {device!r}")


def dali_to_torch(out, device: torch.device, zero_copy: bool) -> torch.Tensor:
    """Dense DALI TensorList -> torch tensor on ``device``, as DALI's own PyTorch iterator does.

    With DALI's dynamic executor (the default in DALI 2.x) the output is handed over
    through DLPack without a copy. DLPack keeps the DALI buffer alive for as long as the
    torch tensor lives, and it orders the hand-over with torch's current stream. Otherwise
    the whole batch is copied with one ``feed_ndarray`` call on torch's current stream.
    """
    from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type

    tensor = out.as_tensor()
    if zero_copy:
        if device.type == "cuda":
            with torch.cuda.device(device):
                return torch.from_dlpack(tensor)
        return torch.from_dlpack(tensor)
    result = torch.empty(tensor.shape(), dtype=to_torch_type[tensor.dtype], device=device)
    stream = torch.cuda.current_stream(device) if device.type == "cuda" else None
    feed_ndarray(tensor, result, cuda_stream=stream)
    return result


class DaliAugment:
    """The augmentation ladder (S0-S4) as a DALI pipeline fed a whole uint8 NHWC batch.

    ``device="cpu"``: CPU operators, ``device_id=None``. ``device="cuda"`` (or
    ``"cuda:N"``): GPU operators on ``torch.cuda.current_device()`` (or N). The input
    tensor is copied in on torch's current stream and the output is copied out on it.

    ``__call__(images_uint8_nhwc)`` returns float [B,3,H,W] in [0,1] on the input's
    device. ``B`` may be anything from 1 to ``batch_size`` (e.g. the last, smaller batch
    of an epoch). ``seed`` seeds the pipeline, so two instances with the same seed give
    the same sequence of outputs for the same sequence of inputs.
    """

    def __init__(self, level: str, image_size: int, batch_size: int, device: str = "cpu",
                 seed: int = 0, num_threads: int = 2):
        self.level = check_level(level)
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        if self.image_size <= 0 or self.batch_size <= 0:
            raise ValueError(f"image_size and batch_size must be positive; got {image_size}, {batch_size}")
        self.dali_device, self.device_id = dali_placement(device)
        self.torch_device = torch.device("cpu") if self.device_id is None \
            else torch.device("cuda", self.device_id)
        self.seed = int(seed)
        self._pipe = _external_source_pipeline(
            level=self.level, image_size=self.image_size, dali_device=self.dali_device,
            batch_size=self.batch_size, num_threads=int(num_threads), device_id=self.device_id,
            seed=self.seed, prefetch_queue_depth=1,
        )
        self._pipe.build()

    def __repr__(self) -> str:
        return (f"DaliAugment(level={self.level!r}, image_size={self.image_size}, "
                f"batch_size={self.batch_size}, device={self.dali_device!r}, seed={self.seed})")

    def __call__(self, images_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        x = images_uint8_nhwc
        if not (isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.ndim == 4 and x.shape[3] == 3):
            raise ValueError(f"expected a uint8 [B,H,W,3] tensor; got "
                             f"{getattr(x, 'dtype', type(x))} {tuple(getattr(x, 'shape', ()))}")
        b, h, w, _ = x.shape
        if (h, w) != (self.image_size, self.image_size):
            raise ValueError(f"images must be {self.image_size}x{self.image_size} (image_size); got {h}x{w}")
        if b > self.batch_size:
            raise ValueError(f"batch of {b} images exceeds batch_size={self.batch_size}")
        if b == 0:
            return torch.empty((0, 3, h, w), dtype=torch.float32, device=x.device)
        x = x.to(self.torch_device).contiguous()
        data = x.numpy() if x.device.type == "cpu" else x
        self._pipe.feed_input("images", data, layout="HWC")
        (out,) = self._pipe.run()
        y = dali_to_torch(out, self.torch_device, zero_copy=bool(self._pipe.exec_dynamic))
        return y.to(images_uint8_nhwc.device)


def _external_source_pipeline(level: str, image_size: int, dali_device: str, **pipe_kwargs):
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(enable_conditionals=True)
    def pipe():
        images = fn.external_source(name="images", device=dali_device, layout="HWC",
                                    dtype=types.UINT8, batch=True)
        return dali_augment_graph(images, level, image_size)

    return pipe(**pipe_kwargs)


