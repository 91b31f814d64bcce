"""``jointspace fit``: learn a joint space on a dataset split and save it."""

import contextlib
import json

from .._checks import check_tower_items, named_as
from .._common import add_data_options, console, data_source, default_split, load_split, parse_params, split_names


def register(sub):
    p = sub.add_parser("fit", help="learn a joint space and save it to a folder",
                       description="Fit a joint model on one split of a built-in dataset or of your own data "
                                   "(a manifest, a folder of images with captions, an arrays file) and save it "
                                   "(config.json + state.safetensors). With --towers, raw items go through "
                                   "frozen pretrained towers first. Settings --param leaves open are chosen by "
                                   "5-fold cross-validation on the training pairs (closed-form models) or "
                                   "on the validation split (trained ones). Options the chosen model does not use "
                                   "are refused (e.g. --epochs for the closed-form cca).",
                       epilog="examples: jointspace fit wikipedia --model rcca --param reg=0.5 --out runs/wiki\n"
                              "          jointspace fit openclipart --towers efficientnet-lite0,minilm "
                              "--model cca --out runs/clip-cca\n"
                              "          jointspace fit captions.csv --towers efficientnet-lite0,minilm --out runs/mine\n"
                              "          jointspace fit photos/ --towers efficientnet-lite0,minilm --out runs/mine\n"
                              "          jointspace fit features.mat --modality image=I_tr --modality text=T_tr "
                              "--labels L_tr --out runs/mine")
    p.add_argument("dataset", metavar="DATA",
                   help="a built-in dataset name (see 'jointspace datasets'), a manifest, a folder or an arrays file")
    p.add_argument("--model", default="rcca",
                   help="model name (default: rcca, regularised CCA: above plain CCA on Wikipedia, OpenClipart "
                        "and small collections, where plain CCA over wide tower features matches every pair "
                        "perfectly and learns nothing); settings not given are chosen for you")
    p.add_argument("--towers", help="comma-separated tower names, one per modality (e.g. efficientnet-lite0,minilm)")
    p.add_argument("--split",
                   help="split to fit on (default: train, or the only split of a built-in dataset without one; "
                        "for your own data without --split-column and a closed-form model, all of it); "
                        "several joined by + (e.g. train+val) to refit on "
                        "them once settings are chosen: the val split then chooses nothing, so give the "
                        "settings with --param (clip still holds out val_fraction of the pairs to choose its "
                        "best epoch unless --param val_fraction=0)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE",
                   help="model parameter, repeatable; values are JSON (e.g. n_components=10, reg=0.1, "
                        "preprocess=standard); a value starting with { or [ must be valid JSON")
    p.add_argument("--n-components", type=int, metavar="N",
                   help="size of the joint space: --param n_components=N, or --param dim=N for clip, --param "
                        "latent_dim=N for the autoencoders and VAEs")
    p.add_argument("--epochs", type=int, help="trained models (clip, dcca, dccae, ae, aae, mvae-*, beta-vae): passes over the training pairs")
    p.add_argument("--batch-size", type=int,
                   help="trained models (clip, dcca, dccae, ae, aae, mvae-*, beta-vae): pairs per step (for clip, the negatives)")
    p.add_argument("--private-dim", type=int, metavar="P",
                   help="clip and the multimodal VAEs (mvae-*, beta-vae): give each modality a private part "
                        "of size P besides its shared part (kept for rebuilding its features; "
                        "--param private_dim=P)")
    p.add_argument("--regularizer", action="append", metavar="NAME[:VALUE]",
                   help="clip or a multimodal VAE with private parts: a regulariser between the private "
                        "parts of different modalities and between each modality's shared and private parts, "
                        "repeatable: frobenius, abs_dot, weight (clip only), lagrange, auglag, hsic, club, "
                        "adversarial (VALUE: the weight, or the ascent rate of lagrange/auglag), e.g. "
                        "--regularizer hsic:10")
    p.add_argument("--members", type=int, metavar="M",
                   help="clip only: a seed ensemble of M models (seeds seed .. seed+M-1) whose "
                        "similarities are averaged (default: 1, a single model)")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="clip with --members: members fitted at once, one process each (-1: one per CPU core; "
                        "default: 1)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="trained models (clip, dcca, dccae, ae, aae, beta-vae, mvae-*): continue the checkpointed "
                        "run in RUN_DIR exactly (from its newest checkpoint, or from the one of its "
                        "checkpoints/step-N folders given)")
    p.add_argument("--run-dir", metavar="DIR",
                   help="trained models (clip, dcca, dccae, ae, aae, beta-vae, mvae-*): where checkpoints and "
                        "metrics.csv go (default: OUT.train beside OUT), and for a generative model its test "
                        "report.json and, when its images are pictures (not flat vectors), generations.png; "
                        "neither inside --out nor around it")
    p.add_argument("--out", required=True,
                   help="folder to write the fitted model to: new, empty, or a saved model to replace")
    add_data_options(p)
    p.set_defaults(handler=run)


def _val_split(args, ds):
    """The val split for choosing settings, unless it is among the splits fitted on."""
    return load_split(args.dataset, "val", args) if "val" in ds.splits and "val" not in split_names(args.split) else None


def _fit_towers(args, params):
    from ...errors import InputError
    from ...towers import create_tower

    towers = {}
    names = [t.strip() for t in args.towers.split(",") if t.strip()]
    if not names:
        raise InputError(f"--towers: expected tower names separated by commas (e.g. efficientnet-lite0,minilm), "
                         f"got {args.towers!r}")
    for name in names:
        with named_as("tower", "--towers"):
            modality = create_tower(name).modality
        if modality in towers:
            raise InputError(f"--towers: two towers for the {modality} modality ({towers[modality]}, {name})")
        towers[modality] = name
    ds = data_source(args.dataset, args)
    missing = [m for m in towers if m not in ds.modalities]
    if missing:
        raise InputError(f"--towers: dataset {args.dataset!r} has modalities {', '.join(ds.modalities)}; "
                         f"no {', '.join(missing)}")
    train = load_split(args.dataset, args.split, args)
    for m, name in towers.items():
        check_tower_items(name, m, train[m], args.dataset, "--towers", "; fit on them without --towers")
    if args.model == "clip":
        return _fit_trained(args, {**params, "towers": towers, "relevance": ds.relevance}, train,
                            _val_split(args, ds)), None
    from ...eval.search_spaces import has_search_space
    from ...models.towered import fit_with_towers

    given = [opt for opt, value in (("--resume", args.resume), ("--run-dir", args.run_dir)) if value is not None]
    if given:
        raise InputError(f"{', '.join(given)}: with --towers, only clip trains with checkpoints; {args.model} over "
                         "towers is fitted in one call; drop it, or embed the items first (jointspace embed) and "
                         "fit on the arrays")

    # a closed-form head: what --param leaves open is chosen by 5-fold CV on the training
    # features (every training pair counts, not only a small validation split)
    searched = has_search_space(args.model)
    with console.status(f"embedding {args.dataset}/{args.split} ({len(train)} pairs) and "
                        + (f"choosing the settings of {args.model} by 5-fold cross-validation (--param fixes one)"
                           if searched else f"fitting {args.model}")):
        model, report = fit_with_towers(train, towers, head=args.model, head_params=params,
                                        relevance=ds.relevance, n_folds=5 if searched else None)
    selection = report.get("selection")
    if selection is None or selection["protocol"] == "none":
        return model, None
    console.print(f"chosen by {selection['protocol']} on {args.dataset}/{args.split} (mean {selection['metric']} "
                  f"{selection['score']:.4f} over {selection['n_tried']} settings, {selection['seconds']:.1f} s): "
                  + ", ".join(f"{k}={v}" for k, v in selection["chosen"].items()), highlight=False)
    return model, selection


def _fit_trained(args, params, train, val):
    """A contrastive dual encoder, trained with checkpoints in the run folder."""
    from ...models.base import create_model

    params["run_dir"] = args.run_dir_
    params.setdefault("progress", True)
    members = 1 if args.members is None else args.members
    if members == 1:
        with named_as("resume", "--resume"):
            return create_model("clip", **params).fit(train, val=val, resume=args.resume)
    from ...models.ensemble import SeedEnsemble

    seed = params.pop("seed", 0)
    jobs = 1 if args.jobs is None else args.jobs
    with named_as("n_jobs", "--jobs"):   # e.g. --jobs 2 under torchrun, known once the process group is joined
        return SeedEnsemble("clip", n_members=members, params=params, seed=seed, n_jobs=jobs).fit(train, val=val)


#: the record of how a closed-form model's settings were chosen, saved beside its config
SELECTION_FILE = "selection.json"


def _fit_closed_form(args, params):
    """A closed-form model; settings not given are chosen by 5-fold cross-validated retrieval
    on the training pairs over the benches' search space (``--param`` values are kept).

    Returns the fitted model and the record of the choice (None when nothing was searched).
    """
    from ...eval.search_spaces import has_search_space
    from ...eval.selection import choose_settings
    from ...models.base import create_model

    import numpy as np

    from ...errors import InputError

    ds = data_source(args.dataset, args)
    pairs = load_split(args.dataset, args.split, args)
    raw = [m for m in pairs.modalities if not isinstance(pairs[m], np.ndarray)]
    if raw and has_search_space(args.model):   # files and captions, not the feature vectors it searches on
        raise InputError(f"--towers: {args.model} is fitted on feature vectors, and {args.dataset} holds "
                         f"{' and '.join(raw)} items; name a pretrained tower per modality, e.g. --towers "
                         f"efficientnet-lite0,minilm")
    if "run_dir" in _model_parameters(args.model):   # deep CCA: trained with checkpoints in the run folder
        model = create_model(args.model, **{"progress": True, **params, "run_dir": args.run_dir_})
        with named_as("resume", "--resume"):
            return model.fit(pairs, resume=args.resume), None
    if not has_search_space(args.model):
        model = create_model(args.model, **params)
        with console.status(f"fitting {args.model} on {args.dataset}/{args.split} ({len(pairs)} pairs)"):
            model.fit(pairs)
        return model, None
    with console.status(f"choosing the settings of {args.model} by 5-fold cross-validation on "
                        f"{args.dataset}/{args.split} ({len(pairs)} pairs; --param fixes one)"):
        res = choose_settings(args.model, pairs, given=params, relevance=ds.relevance)
    if res.protocol == "none":
        return res.model, None
    console.print(f"chosen by {res.protocol} on {args.dataset}/{args.split} (mean {res.score_key} "
                  f"{res.best_score:.4f} over {len(res.table)} settings, {res.seconds:.1f} s): "
                  + ", ".join(f"{k}={v}" for k, v in res.best_params.items()), highlight=False)
    return res.model, res.summary()


def _is_generative(name: str) -> bool:
    """Whether registered model ``name`` is a multimodal (variational) autoencoder."""
    from ...models._generative import GenerativeModel
    from ...models.base import MODELS, _import_builtin_models

    _import_builtin_models()
    factory = MODELS.get(name)
    return isinstance(factory, type) and issubclass(factory, GenerativeModel)


def _check_generative_items(args, params, train) -> None:
    """Refuse, naming --towers, a modality whose items a generative model cannot read without
    a tower (image files): the model's own message gives the Python form, towers={...}."""
    import numpy as np

    from ...errors import InputError
    from ...models._codecs import codec_for
    from ...models._generative import DEFAULT_TOWERS

    towers = {**DEFAULT_TOWERS, **(params["towers"] if isinstance(params.get("towers"), dict) else {})}
    used = params.get("modalities")
    for m in train.modalities:
        if isinstance(train[m], np.ndarray) or m in towers or (isinstance(used, list) and m not in used):
            continue
        try:
            codec_for(train[m], m)
        except InputError:
            raise InputError(f"--towers: {args.model} reads {m} as pixel arrays, feature vectors or texts, and "
                             f"{args.dataset} holds {m} files; read every modality through pretrained towers "
                             f"(e.g. --towers efficientnet-lite0,minilm), or {m} alone "
                             f"(--param 'towers={{\"{m}\": \"efficientnet-lite0\"}}')") from None


def _fit_generative(args, params, train, val):
    """A multimodal autoencoder or VAE, trained with checkpoints in the run folder."""
    from ...models.base import create_model

    _check_generative_items(args, params, train)
    params["run_dir"] = args.run_dir_
    params.setdefault("progress", True)
    with named_as("resume", "--resume"):
        return create_model(args.model, **params).fit(train, val=val, resume=args.resume)


def _evaluate_generative(args, model, train) -> None:
    """Coherence, probes, retrieval and the bound on the test split; report.json and the grid
    of generations go into the run folder."""
    from pathlib import Path

    from ...eval.generative import generation_grid, generative_report, has_pictures
    from ...eval.report import make_report, write_json
    from ...train.monitor import GENERATIONS_FILE, REPORT_FILE

    ds = data_source(args.dataset, args)
    if "test" not in ds.splits or "test" in split_names(args.split) or train.labels is None:
        return
    test = load_split(args.dataset, "test", args)
    with console.status(f"evaluating {args.model} on {args.dataset}/test ({len(test)} pairs)"):
        row = generative_report(model, train, test)
    run = Path(args.run_dir_)
    report = make_report(args.dataset, "test", [{"method": model.display_name, **row}])
    write_json(report, run / REPORT_FILE)
    keys = [k for k in row if k.endswith("/coherence") or k.startswith("classifier/") or k.startswith("probe/")
            or k in ("bound/elbo", "bound/log_likelihood")]
    for k in keys:
        console.print(f"  {k:34s} {row[k]:.4f}", highlight=False)
    console.print(f"report: {run / REPORT_FILE}", highlight=False)
    if has_pictures(model):
        path = generation_grid(model, test, run / GENERATIONS_FILE)
        console.print(f"grid of reconstructions and cross-generations: {path}", highlight=False)


def _model_parameters(name: str) -> list[str]:
    """The keyword parameters of registered model ``name`` (InputError for an unknown name)."""
    import inspect

    from ...models.base import MODELS, _import_builtin_models

    _import_builtin_models()
    return list(inspect.signature(MODELS.get(name)).parameters)


def _check_options(args, params: dict) -> None:
    """Refuse options the model does not use and inconsistent paths; map --n-components.

    Sets ``args.run_dir_``: the run folder of a clip fit (None for other models).
    """
    from pathlib import Path

    from ..._io import check_replaceable
    from ..._validation import check_int
    from ...errors import InputError
    from ...models.base import is_saved_model, list_models
    from ...train.checkpoint import is_run_dir, run_dir_of

    known = _model_parameters(args.model)
    # contrastive, deep CCA and generative models train with checkpoints in a run folder
    trained = "run_dir" in known
    unused = [opt for opt, value, used in (
        ("--epochs", args.epochs, "epochs" in known),
        ("--batch-size", args.batch_size, "batch_size" in known),
        ("--members", args.members, args.model == "clip"),
        ("--private-dim", args.private_dim, "private_dim" in known),
        ("--regularizer", args.regularizer, "regularizers" in known),
        ("--jobs", args.jobs, args.model == "clip"),
        ("--resume", args.resume, trained),
        ("--run-dir", args.run_dir, trained)) if value is not None and not used]
    if unused:
        trained_by = [m for m in list_models() if "epochs" in _model_parameters(m)]
        notes = []
        if {"--members", "--jobs"} & set(unused):
            notes.append("--members and --jobs are for clip")
        if {"--private-dim", "--regularizer"} & set(unused):
            with_parts = [m for m in list_models() if "private_dim" in _model_parameters(m)]
            notes.append(f"--private-dim and --regularizer are for {', '.join(with_parts)}")
        if {"--resume", "--run-dir"} & set(unused):
            notes.append("--resume and --run-dir are for trained models (clip, dcca, dccae and the generative "
                         "models)")
        if {"--epochs", "--batch-size"} & set(unused):
            notes.append(f"--epochs and --batch-size for {', '.join(trained_by)}")
        raise InputError(f"{', '.join(unused)}: model {args.model!r} does not use "
                         f"{'this option' if len(unused) == 1 else 'these options'} ({'; '.join(notes)}); "
                         f"drop {'it' if len(unused) == 1 else 'them'}")
    mods = params.get("modalities")
    if mods is not None and not (isinstance(mods, list) and mods and all(isinstance(m, str) for m in mods)):
        raise InputError(f"--param modalities: expected a JSON list of modality names, e.g. "
                         f"'[\"image\", \"text\"]', got {mods!r}")
    for key in ("epochs", "batch_size", "private_dim"):
        if getattr(args, key) is not None:
            if key in params and params[key] != getattr(args, key):
                raise InputError(f"--{key.replace('_', '-')}: {getattr(args, key)} disagrees with --param "
                                 f"{key}={params[key]}; give one of them")
            params[key] = getattr(args, key)
    if args.regularizer:
        from ...objectives.regularizers import parse_regularizers

        if "regularizers" in params:
            raise InputError("--regularizer: also given as --param regularizers; give one of them")
        with named_as("regularizers", "--regularizer"):
            specs = parse_regularizers(list(args.regularizer))
        if not params.get("private_dim"):
            raise InputError(f"--regularizer: {', '.join(n for n, _ in specs)} acts between private parts, and the "
                             "model has none; give --private-dim P (P > 0) too")
        params["regularizers"] = [f"{n}:{v!r}" for n, v in specs]
    if args.n_components is not None:
        target = next((k for k in ("n_components", "dim", "latent_dim") if k in known), None)
        if target is None:
            raise InputError(f"--n-components: model {args.model!r} has no size of the joint space to set; drop it")
        n = check_int(args.n_components, "--n-components", low=1)
        if target in params and params[target] != n:
            raise InputError(f"--n-components: {n} disagrees with --param {target}={params[target]}; give one of them")
        params[target] = n
        args.n_components_as_ = target   # the model's messages about it name --n-components
    args.run_dir_ = None
    if not trained:
        check_replaceable(args.out, "model", is_kind=is_saved_model, arg="--out")
        return
    members = 1 if args.members is None else check_int(args.members, "--members", low=1, high=64)
    if args.jobs is not None:
        if members == 1:
            raise InputError(f"--jobs: fits the members of an ensemble at once; it needs --members 2 or more "
                             f"(got --jobs {args.jobs} with --members 1)")
        from ...models.ensemble import resolve_jobs

        resolve_jobs(args.jobs, "--jobs")
    if args.resume and members > 1:
        raise InputError("--resume: continues one run; it cannot be combined with --members")
    given = [(opt, v) for opt, v in (("--run-dir", args.run_dir), ("--param run_dir", params.get("run_dir")))
             if v is not None]
    if len(given) == 2 and Path(str(given[0][1])) != Path(str(given[1][1])):
        raise InputError(f"--run-dir: {given[0][1]} disagrees with --param run_dir={given[1][1]}; give one of them")
    if given:
        option, run_dir = given[0]
    elif args.resume and run_dir_of(args.resume) is not None:   # a run folder, or a checkpoint in one
        option, run_dir = "--resume", str(run_dir_of(args.resume))
    else:   # nothing resumed, or a checkpoint copied out of its run: the run continues in OUT.train
        option, run_dir = None, None
    if option is not None:
        if not isinstance(run_dir, str) or not run_dir.strip():
            raise InputError(f"{option}: expected a folder path, got {run_dir!r}")
        run, dest = Path(run_dir).resolve(), Path(args.out).resolve()
        if run == dest or dest in run.parents:
            raise InputError(f"{option}: {run_dir} is --out or inside it; saving the model replaces --out "
                             f"({args.out}) and would delete the checkpoints; choose a run folder outside it")
        if run in dest.parents:
            raise InputError(f"--out: {args.out} is inside the run folder ({option} {run_dir}); choose an --out "
                             "outside it")
        if option != "--resume":  # a new run may reuse a run folder, never another artefact's folder
            check_replaceable(run_dir, "run folder", is_kind=is_run_dir, arg=option)
    out = check_replaceable(args.out, "model", is_kind=is_saved_model, arg="--out")
    # beside OUT, not inside it: saving the model replaces the OUT folder atomically
    args.run_dir_ = run_dir if run_dir is not None else str(out.with_name(out.name + ".train"))


def run(args) -> int:
    from ...train import distributed as dist

    params = parse_params(args.param)
    _check_options(args, params)
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


@contextlib.contextmanager
def _modalities_named():
    """A two-view model's request to name two of the modalities says how: ``--param modalities``."""
    from ...errors import InputError

    try:
        yield
    except InputError as exc:
        from ...models.cca import ModalitiesToName

        if not isinstance(exc, ModalitiesToName):
            raise
        example = json.dumps(list(exc.available[:2]))
        raise InputError(f"--param {exc}, e.g. --param 'modalities={example}'") from None


def _run(args, params, rank: int) -> int:
    from ...errors import InputError
    from ...models.base import create_model

    if args.split is None:   # a closed-form model on your own data chooses nothing on val: fit on everything,
        # unless a split column names the rows it may learn from
        closed_form = not _is_generative(args.model) and args.model != "clip"
        ds = data_source(args.dataset, args)
        if ds.builtin:   # its train split, or its only one (all of photos)
            args.split = default_split(ds, "train")
        else:
            args.split = "all" if closed_form and not getattr(ds, "split_column", None) else "train"
        if args.split == "all" and not ds.builtin and getattr(args, "val_fraction", None) is not None:
            raise InputError(f"--val-fraction: {args.model} fits on all of your data (settings you do not give are "
                             f"chosen by 5-fold cross-validation), so nothing is held out; drop --val-fraction, or "
                             f"give --split train to fit on the rest")

    generative_train = None   # the pairs a generative model was fitted on, for its evaluation
    selection = None          # how a closed-form model's settings were chosen
    # the model's messages about its regularizers and its size name the options that gave them
    with contextlib.ExitStack() as named:
        if args.regularizer:
            named.enter_context(named_as("regularizers", "--regularizer"))
        if getattr(args, "n_components_as_", None):
            named.enter_context(named_as(args.n_components_as_, "--n-components"))
        named.enter_context(_modalities_named())
        if args.towers is not None:
            model, selection = _fit_towers(args, params)
        elif _is_generative(args.model):
            generative_train = load_split(args.dataset, args.split, args)
            model = _fit_generative(args, params, generative_train, _val_split(args, data_source(args.dataset, args)))
        elif args.model == "clip":
            ds = data_source(args.dataset, args)
            train = load_split(args.dataset, args.split, args)
            val = _val_split(args, ds)
            model = _fit_trained(args, {**params, "relevance": ds.relevance}, train, val)
        else:
            model, selection = _fit_closed_form(args, params)
    if rank != 0:  # every rank holds the same weights; rank 0 writes them
        return 0
    model.save(args.out)
    from pathlib import Path

    chosen = Path(args.out) / SELECTION_FILE
    if selection is not None:   # after save: saving replaces the folder
        from ...eval.report import write_json

        write_json(selection, chosen)
    else:   # saving over a model keeps files it did not write: an earlier fit's choice would describe another model
        chosen.unlink(missing_ok=True)
    extra = ""
    corr = getattr(getattr(model, "head_", model), "canonical_correlations_", None)
    if corr is not None:
        extra = " canonical correlations: " + " ".join(f"{r:.3f}" for r in corr[:10])
    if getattr(model, "members_", None):
        extra = f" ({len(model.members_)} members)"
    console.print(f"saved {model.display_name} to {args.out}.{extra}", highlight=False)
    if args.run_dir_ is not None:   # an earlier run's test report and grid describe another model
        from ...train.monitor import GENERATIONS_FILE, REPORT_FILE

        for name in (REPORT_FILE, GENERATIONS_FILE):
            (Path(args.run_dir_) / name).unlink(missing_ok=True)
    if generative_train is not None:
        _evaluate_generative(args, model, generative_train)
    return 0
