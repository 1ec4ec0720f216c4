"""Can the world model draw a concept from ONE token? The mean of its colour's and shape's vectors.

A trigger is one token (with ``--num_vectors 1``) standing for two words. Before blaming a
trainer for a concept it never learns, this checks that a single vector exists that the model
draws as the concept: the mean of the two words' own vectors, put in place of the trigger in
"a photo of a <t>", drawn with the previews' sampler and read by the world's judge. Printed per
concept: that share, and each word's vector alone (which draws the word, not the pair).

    python -m tools.one_token_concepts --concepts "red circle,green star" --pictures 24

``--save DIR`` also writes each concept's one-token vector as ``DIR/<colour>-<shape>.safetensors``
under the trigger ``<blicket>``, to start a run from it (``invokeai-ti --initial_embedding``) and
see whether training keeps it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safetensors.torch import save_file

from invokeai_ti.world import WORLD_MODEL
from invokeai_ti.world.judge import share_showing
from tools.sampling import TriggerSampler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concepts", required=True, help="comma list of 'colour shape'")
    parser.add_argument("--pictures", type=int, default=24)
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--save", type=Path, help="write each concept's one-token vector here")
    args = parser.parse_args(argv)
    sampler = TriggerSampler(WORLD_MODEL)
    print("| concept | mean of the two words' vectors | colour word alone | shape word alone |")
    print("|---|---|---|---|")
    for concept in args.concepts.split(","):
        colour, shape = concept.split()
        words = {"colour": sampler.word(colour), "shape": sampler.word(shape)}
        vectors = [(words["colour"] + words["shape"]) / 2, words["colour"], words["shape"]]
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            save_file({"<blicket>": vectors[0].contiguous()}, str(args.save / f"{colour}-{shape}.safetensors"))
        shares = [share_showing(sampler.draw(v, args.pictures, args.seed), colour, shape) for v in vectors]
        print(f"| {concept} | " + " | ".join(f"{s:.0%}" for s in shares) + " |", flush=True)


if __name__ == "__main__":
    main()
