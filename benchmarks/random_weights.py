"""A copy of a sentence-transformers model folder with freshly initialised weights, for timing on a machine
its weights cannot reach.

The copy keeps everything that decides the compute (the transformer's config, the tokenizer, the prompts,
the pooling and Dense layers' shapes, the sequence length), so a throughput or step time measured with it is
the real model's; its embeddings mean nothing. The source may lack its weight files (``*.safetensors``):
only its configs and tokenizer are read. A ``tokenizer.json.xz`` is decompressed (EmbeddingGemma's
tokenizer.json is 32 MB, 3.5 MB compressed). Lent GPU machines take 64 MiB of files per call, and
EmbeddingGemma's weights are 1.2 GB; ``benchmarks/teacher_gpu.py --random-weights`` then times the copy.

    python benchmarks/random_weights.py ~/.cache/harnesslm/models/embeddinggemma-300m /tmp/gemma-random \\
        [--layers 2]
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel

WEIGHTS = ("*.safetensors", "*.bin", "*.xz", "*.ipynb")


def random_copy(source: Path, out: Path, layers: int | None = None) -> Path:
    """``out``: ``source``'s configs and tokenizer with random weights (``layers`` shrinks the transformer, for
    a quick check on a CPU)."""
    shutil.copytree(source, out, ignore=shutil.ignore_patterns(*WEIGHTS), dirs_exist_ok=True)
    packed = source / "tokenizer.json.xz"
    if packed.exists():
        (out / "tokenizer.json").write_bytes(lzma.decompress(packed.read_bytes()))
    config = AutoConfig.from_pretrained(source)
    if layers is not None:
        config.num_hidden_layers = layers
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:layers]
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(out)
    for dense in sorted(out.glob("*_Dense")):
        shape = json.loads((dense / "config.json").read_text(encoding="utf-8"))
        linear = torch.nn.Linear(shape["in_features"], shape["out_features"], bias=shape.get("bias", True))
        save_file(
            {f"linear.{name}": p.detach().contiguous() for name, p in linear.named_parameters()},
            str(dense / "model.safetensors"),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a sentence-transformers folder (weight files may be missing)")
    parser.add_argument("out", type=Path)
    parser.add_argument("--layers", type=int, default=None, help="keep only this many transformer layers")
    args = parser.parse_args(argv)
    print(random_copy(args.source, args.out, args.layers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
