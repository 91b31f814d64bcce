"""``jointspace fit``: learn a joint space on a dataset split and save it."""

from .._common import console, load_split, parse_params


def register(sub):
    p = sub.add_parser("fit", help="learn a joint space and save it to a folder",
                       description="Fit a joint model on one split of a built-in dataset and save it "
                                   "(config.json + state.safetensors). With --towers, raw items go through "
                                   "frozen pretrained towers first, and the head's settings are chosen on "
                                   "the dataset's validation split.",
                       epilog="examples: jointspace fit wikipedia --model rcca --param reg=0.5 --out runs/wiki\n"
                              "          jointspace fit openclipart --towers efficientnet-lite0,minilm "
                              "--model cca --out runs/clip-cca")
    p.add_argument("dataset", help="built-in dataset name (see 'jointspace datasets')")
    p.add_argument("--model", default="cca", help="model name (default: cca)")
    p.add_argument("--towers", help="comma-separated tower names, one per modality (e.g. efficientnet-lite0,minilm)")
    p.add_argument("--split", default="train", help="split to fit on (default: train)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="model parameter, repeatable; values are JSON (e.g. n_components=10, reg=0.1, "
                        "preprocess=standard)")
    p.add_argument("--n-components", type=int, help="shorthand for --param n_components=N")
    p.add_argument("--epochs", type=int, help="trained models (clip): passes over the training pairs")
    p.add_argument("--batch-size", type=int, help="trained models (clip): pairs per step (the negatives)")
    p.add_argument("--members", type=int, default=1, metavar="M",
                   help="trained models (clip): a seed ensemble of M models (seeds seed .. seed+M-1) whose "
                        "similarities are averaged (default: 1, a single model)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="with --members: members fitted at once, one process each (-1: one per CPU core)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="trained models (clip): continue the checkpointed run in RUN_DIR exactly")
    p.add_argument("--run-dir", metavar="DIR",
                   help="trained models (clip): where checkpoints and metrics.csv go (default: OUT.train beside OUT)")
    p.add_argument("--out", required=True, help="folder to write the fitted model to")
    p.set_defaults(handler=run)


def _fit_towers(args, params):
    from ...data.datasets import get_dataset
    from ...errors import InputError
    from ...towers import create_tower

    towers = {}
    for name in [t.strip() for t in args.towers.split(",") if t.strip()]:
        modality = create_tower(name).modality
        if modality in towers:
            raise InputError(f"--towers: two towers for the {modality} modality ({towers[modality]}, {name})")
        towers[modality] = name
    ds = get_dataset(args.dataset)
    missing = [m for m in towers if m not in ds.modalities]
    if missing:
        raise InputError(f"--towers: dataset {args.dataset!r} has modalities {', '.join(ds.modalities)}; "
                         f"no {', '.join(missing)}")
    train = load_split(args.dataset, args.split)
    val = load_split(args.dataset, "val") if "val" in ds.splits and args.split != "val" else None
    if args.model == "clip":
        return _fit_trained(args, {**params, "towers": towers, "relevance": ds.relevance}, train, val)
    from ...models.towered import fit_with_towers

    model, report = fit_with_towers(train, towers, head=args.model, head_params=params, val_pairs=val,
                                    relevance=ds.relevance)
    if report["best"].get("head_params"):
        console.print("chosen on the validation split: " + ", ".join(
            f"{k}={v}" for k, v in report["best"]["head_params"].items()), highlight=False)
    return model


def _fit_trained(args, params, train, val):
    """A contrastive dual encoder, trained with checkpoints in the run folder."""
    from pathlib import Path

    from ..._validation import check_int
    from ...errors import InputError
    from ...models.base import create_model

    for key in ("epochs", "batch_size"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    # beside OUT, not inside it: saving the model replaces the OUT folder atomically
    out = Path(args.out)
    params.setdefault("run_dir", args.run_dir or args.resume or str(out.with_name(out.name + ".train")))
    params.setdefault("progress", True)
    members = check_int(args.members, "--members", low=1, high=64)
    if args.jobs != 1 and members == 1:
        raise InputError(f"--jobs: fits the members of an ensemble at once; it needs --members 2 or more "
                         f"(got --jobs {args.jobs} with --members 1)")
    if members == 1:
        return create_model("clip", **params).fit(train, val=val, resume=args.resume)
    if args.resume:
        raise InputError("--resume: continues one run; it cannot be combined with --members")
    from ...models.ensemble import SeedEnsemble, resolve_jobs

    resolve_jobs(args.jobs, "--jobs")
    seed = params.pop("seed", 0)
    return SeedEnsemble("clip", n_members=members, params=params, seed=seed, n_jobs=args.jobs).fit(train, val=val)


def run(args) -> int:
    from ...train import distributed as dist

    params = parse_params(args.param)
    # under torchrun (WORLD_SIZE > 1) a contrastive fit trains across the processes
    rank = 0
    if args.model == "clip":
        from ...train.device import backend_for, resolve_device

        rank = dist.init_from_env(backend_for(resolve_device(params.get("device", "cpu"))))[0]
    try:
        code = _run(args, params, rank)
    except BaseException:
        dist.leave()  # no barrier: the other ranks may never reach it
        raise
    dist.finish()
    return code


def _run(args, params, rank: int) -> int:
    from ...models.base import create_model

    if args.n_components is not None:
        params["n_components"] = args.n_components
    if args.towers:
        model = _fit_towers(args, params)
    elif args.model == "clip":
        from ...data.datasets import get_dataset

        ds = get_dataset(args.dataset)
        train = load_split(args.dataset, args.split)
        val = load_split(args.dataset, "val") if "val" in ds.splits and args.split != "val" else None
        model = _fit_trained(args, {**params, "relevance": ds.relevance}, train, val)
    else:
        model = create_model(args.model, **params)
        pairs = load_split(args.dataset, args.split)
        with console.status(f"fitting {args.model} on {args.dataset}/{args.split} ({len(pairs)} pairs)"):
            model.fit(pairs)
    if rank != 0:  # every rank holds the same weights; rank 0 writes them
        return 0
    model.save(args.out)
    extra = ""
    corr = getattr(getattr(model, "head_", model), "canonical_correlations_", None)
    if corr is not None:
        extra = " canonical correlations: " + " ".join(f"{r:.3f}" for r in corr[:10])
    if getattr(model, "members_", None):
        extra = f" ({len(model.members_)} members)"
    console.print(f"saved {args.model} to {args.out}.{extra}", highlight=False)
    return 0
