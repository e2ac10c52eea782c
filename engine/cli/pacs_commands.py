"""Sub-command ``pacs``: find, retrieve and store on a DICOMweb server (a PACS).

``delineo-engine pacs --url URL [--user U | --token-env NAME] find [filters]``
lists series; ``... get SERIES_UID (-o FILE.nii.gz | --out DIR)`` retrieves a
series as a volume or as its DICOM files; ``... store FILE_OR_FOLDER...``
sends DICOM files (images, SEG, SR). The URL may come from
``DELINEO_PACS_URL``, the password from ``DELINEO_PACS_PASSWORD`` (or a
prompt on a terminal), a token from the environment variable ``--token-env``
names (default ``DELINEO_PACS_TOKEN``): no secret is ever on the command line
or in any output. Server failures are one line with exit status 3
(:mod:`engine.pacs.client`).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..core.errors import ParameterError
from .common import check_output_file, check_output_folder, print_json, say
from .progress import ProgressBar

PASSWORD_ENV = "DELINEO_PACS_PASSWORD"
URL_ENV = "DELINEO_PACS_URL"
TOKEN_ENV = "DELINEO_PACS_TOKEN"


def _date(text: str) -> str:
    from ..pacs import parse_date_range

    try:
        return parse_date_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pacs",
        help="find, retrieve and store series on a DICOMweb server (PACS)",
        description="Talk to a PACS over DICOMweb: 'find' lists series, 'get' retrieves one "
        f"as a volume or as DICOM files, 'store' sends DICOM files. The URL may come from "
        f"{URL_ENV}, the password from {PASSWORD_ENV} (or a prompt), a bearer token from the "
        f"variable --token-env names (default {TOKEN_ENV}).",
    )
    p.add_argument("--url", default=os.environ.get(URL_ENV),
                   help=f"DICOMweb root, e.g. http://host:8042/dicom-web (default ${URL_ENV})")
    p.add_argument("--user", help=f"user name for basic auth (password: ${PASSWORD_ENV} or a "
                   "prompt)")
    p.add_argument("--token-env", metavar="NAME", default=None,
                   help=f"environment variable holding a bearer token (default {TOKEN_ENV} "
                   "when set)")
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per request (20)")
    p.add_argument("--retries", type=int, default=2,
                   help="retries after a refused connection or a 502/503/504 (2)")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON on stdout (machine-readable)")
    what = p.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)

    f = what.add_parser("find", help="list series matching filters")
    f.add_argument("--patient", help="patient name (* wildcards)")
    f.add_argument("--patient-id", help="patient ID")
    f.add_argument("--date", type=_date, help="study date YYYYMMDD or YYYYMMDD-YYYYMMDD")
    f.add_argument("--modality", help="MR, CT, SEG, ...")
    f.add_argument("--study-uid", help="StudyInstanceUID")
    f.add_argument("--description", help="series description (* wildcards)")
    f.add_argument("--limit", type=int, help="at most this many series")
    f.set_defaults(func=cmd_find)

    g = what.add_parser("get", help="retrieve a series as a volume or as DICOM files")
    g.add_argument("series", metavar="SERIES_UID")
    g.add_argument("--study", metavar="STUDY_UID", help="its study (found when not given)")
    out = g.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", metavar="FILE",
                     help="write the series as a volume (.nii or .nii.gz)")
    out.add_argument("--out", metavar="DIR",
                     help="write the series' DICOM files here (<SOPInstanceUID>.dcm)")
    g.set_defaults(func=cmd_get)

    s = what.add_parser("store", help="send DICOM files (images, SEG, SR) to the server")
    s.add_argument("paths", nargs="+", metavar="FILE_OR_FOLDER")
    s.set_defaults(func=cmd_store)


def _client(args: argparse.Namespace) -> Any:
    from ..pacs import PacsAuth, PacsClient

    if not args.url:
        raise ParameterError(f"no PACS URL: give --url or set {URL_ENV}")
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise ParameterError(f"the environment variable {args.token_env} (--token-env) "
                                 "is not set")
    elif os.environ.get(TOKEN_ENV) and not args.user:
        token = os.environ[TOKEN_ENV]
    password = None
    if args.user and token is None:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            if not sys.stdin.isatty():
                raise ParameterError(f"--user needs a password: set {PASSWORD_ENV} "
                                     "(no terminal to ask on)")
            password = getpass.getpass(f"PACS password for {args.user}: ")
    if args.retries < 0 or args.timeout <= 0:
        raise ParameterError("--retries must be >= 0 and --timeout > 0")
    auth = PacsAuth(user=args.user, password=password, token=token) \
        if (args.user or token) else None
    return PacsClient(args.url, auth=auth, timeout=args.timeout, retries=args.retries)


def cmd_find(args: argparse.Namespace) -> int:
    client = _client(args)
    rows = client.find_series(patient_name=args.patient, patient_id=args.patient_id,
                              study_date=args.date, modality=args.modality,
                              study_uid=args.study_uid, description=args.description,
                              limit=args.limit)
    if args.json:
        print_json([r.to_json() for r in rows])
        return 0
    print(f"{'patient':20} {'id':12} {'date':8} {'mod':4} {'n':>5}  description / series UID")
    for r in rows:
        n = "" if r.instances is None else str(r.instances)
        print(f"{r.patient_name[:20]:20} {r.patient_id[:12]:12} {r.study_date[:8]:8} "
              f"{r.modality[:4]:4} {n:>5}  {r.description}\n{'':52}{r.series_uid}")
    say(f"{len(rows)} series")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from ..io import save

    client = _client(args)
    if args.output:
        output = check_output_file(args.output)
        with tempfile.TemporaryDirectory(prefix="delineo-pacs-") as tmp, \
                ProgressBar("retrieve") as bar:
            volume = client.retrieve_series_volume(args.series, tmp, study_uid=args.study,
                                                   progress=bar)
            written = [save(volume, output)]
    else:
        folder = check_output_folder(args.out)
        with ProgressBar("retrieve") as bar:
            written = client.retrieve_series(args.series, folder, study_uid=args.study,
                                             progress=bar)
    summary = {"series": args.series, "files": written}
    if args.json:
        print_json(summary)
    else:
        print(written[0] if args.output else Path(args.out))
    say(f"retrieved series {args.series}: {len(written)} file(s)")
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    client = _client(args)
    files: list[Path] = []
    for item in args.paths:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file()
                            and not p.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(2, "no such file or folder", str(path))
    result = client.store(files)
    summary = {"sent": len(files), "accepted": result.accepted,
               "failed": [{"sop_instance_uid": u, "reason": r} for u, r in result.failed]}
    if args.json:
        print_json(summary)
    else:
        print(f"stored {len(result.accepted)} of {len(files)} instance(s)"
              + (f"; {len(result.failed)} refused" if result.failed else ""))
    return 0 if not result.failed else 3
