"""Why SwiftFormer int8 fails parity by agreement on ExecuTorch and LiteRT: its random-init layer scales.

    python tests/scripts/int8_layer_scale.py > reports/precision/int8_layer_scale.txt

Both runtimes quantize through PyTorch's PT2E flow with an XNNPACK-style symmetric recipe (int8 weights per
channel, activations per tensor). This script runs that recipe in PyTorch alone (ExecuTorch's
``XNNPACKQuantizer``, ``prepare_pt2e``, calibration, ``convert_pt2e``; the quantize/dequantize pairs
simulate int8) on the suite's random-init networks, and again with every ``layer_scale`` set to 0.1 and
to 1 (trained SwiftFormers carry layer scales of that order; the official initialisation is 1e-5). It
prints the cosine of the logits with fp32 (the suite's gate: 0.98) and top-1 agreement, on seeded inputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models import create_model

CASES = [("swiftformer_xs", None), ("swiftformer_xs", 0.1), ("swiftformer_xs", 1.0), ("swiftformer_s", None),
         ("swiftformer_s", 1.0), ("casvit_xs", None)]  # fmt: skip
IMAGES, CALIBRATION, RESOLUTION = 8, 8, 224


def trial(name: str, layer_scale: float | None) -> str:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    net = create_model(name).eval()
    if layer_scale is not None:
        with torch.no_grad():
            for parameter_name, p in net.named_parameters():
                if "layer_scale" in parameter_name:
                    p.fill_(layer_scale)
    g = torch.Generator().manual_seed(1)
    calibration = [torch.randn(1, 3, RESOLUTION, RESOLUTION, generator=g) for _ in range(CALIBRATION)]
    images = [torch.randn(1, 3, RESOLUTION, RESOLUTION, generator=g) for _ in range(IMAGES)]
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    observed = prepare_pt2e(torch.export.export(net, (calibration[0],)).module(), quantizer)
    with torch.no_grad():
        for batch in calibration:
            observed(batch)
        quantized = convert_pt2e(observed)
        fp32 = torch.cat([net(x) for x in images])
        int8 = torch.cat([quantized(x) for x in images])
    cosine = F.cosine_similarity(fp32, int8, dim=1)
    agree = (fp32.argmax(1) == int8.argmax(1)).float().mean()
    scale = "as initialised" if layer_scale is None else f"set to {layer_scale:g}"
    return (
        f"{name:15s} layer scales {scale:15s} logits' std {fp32.std():.1e}"
        f"  int8 max|diff| {(fp32 - int8).abs().max():.1e}  cosine min {cosine.min():.4f}  top-1 agreement {agree:.2f}"
    )


def main() -> None:
    torch.set_num_threads(1)
    print(f"# python tests/scripts/int8_layer_scale.py  ({__doc__.splitlines()[0].strip()})")
    print(
        f"# PT2E XNNPACK recipe simulated in PyTorch {torch.__version__}; {IMAGES} seeded images, "
        f"{CALIBRATION} calibration batches"
    )
    for name, layer_scale in CASES:
        print(trial(name, layer_scale), flush=True)


if __name__ == "__main__":
    main()
