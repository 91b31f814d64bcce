"""``jointspace datasets``: list the built-in datasets and whether each is available."""

from .._common import add_json_flag, print_json, print_table


def register(sub):
    p = sub.add_parser("datasets", help="list built-in datasets and whether each is installed",
                       description="List the built-in datasets, their splits and modalities, and whether "
                                   "each is installed (with the command that installs it when not), then how to cite "
                                   "each.")
    add_json_flag(p)
    p.set_defaults(handler=run)


def run(args) -> int:
    from ...data.datasets import list_datasets

    rows = list_datasets()
    if args.json:
        print_json({"datasets": rows})
        return 0
    print_table("built-in datasets", ["name", "modalities", "splits", "available", "description / install"],
                [[r["name"], ",".join(r["modalities"]), ",".join(r["splits"]), "yes" if r["available"] else "no",
                  r["description"] if r["available"] else r["install"]] for r in rows])
    print_table("citations", ["name", "citation"], [[r["name"], r["citation"]] for r in rows if r["citation"]])
    return 0
