"""``kbqa``: ingest documents and ask cited questions from the terminal."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..qa.options import STYLES  # light: no model or index imports
from .cli_documents import documents_command
from .runtime import configure_runtime
from .terminal import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_USAGE,
    json_text,
    say,
    snippet,
    stream_answer,
)

if TYPE_CHECKING:
    from ..index.scope import Scope
    from ..qa.knowledge_base import KnowledgeBase

MAX_K = 100  # as Settings.top_k


def _top_k(text: str) -> int:
    """argparse type for -k: 1..MAX_K passages."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_K:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_K}, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--kb", type=Path, help="knowledge-base folder (default: $KBQA_HOME/default)"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log what happens")

    parser = argparse.ArgumentParser(
        prog="kbqa", description="Ask questions of your own documents, offline, with citations."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", parents=[common], help="add or update documents")
    ingest.add_argument("paths", nargs="+", help="files or folders (walked recursively)")
    ingest.add_argument(
        "--sync", action="store_true", help="also remove documents whose files are gone"
    )
    ingest.add_argument("--password", help="password for encrypted PDFs")
    ingest.add_argument(
        "--reembed",
        action="store_true",
        help="if the knowledge base was built with another embedding model, "
        "embed its stored chunks again with the configured one first",
    )
    ingest.add_argument("--no-progress", action="store_true", help="no progress bar")
    ingest.add_argument(
        "--tag", action="append", default=[], help="tag every document read (repeatable)"
    )
    _engine_arguments(ingest, "read, chunk and embed")

    ask = commands.add_parser("ask", parents=[common], help="answer one question (or a batch)")
    ask.add_argument("question", nargs="?", help="the question (or --batch FILE --out FILE)")
    ask.add_argument("--batch", type=Path, help="JSON Lines of questions (docs/scaling.md)")
    ask.add_argument("--out", type=Path, help="with --batch: JSON Lines answers, in input order")
    _engine_arguments(ask, "answer a --batch")
    ask.add_argument("-k", type=_top_k, help=f"passages to retrieve (1-{MAX_K})")
    ask.add_argument("--json", action="store_true", help="print the whole Answer as JSON")
    _style_argument(ask)

    chat = commands.add_parser("chat", parents=[common], help="interactive chat in the terminal")
    _style_argument(chat)
    chat.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="ID",
        help="go on with the latest conversation (or the one whose id starts with ID)",
    )

    search = commands.add_parser("search", parents=[common], help="nearest passages, no LLM")
    search.add_argument("query")
    search.add_argument("-k", type=_top_k, default=5, help=f"passages to show (1-{MAX_K})")
    search.add_argument("--json", action="store_true")
    for scoped in (ask, chat, search):
        _scope_arguments(scoped)

    docs = commands.add_parser("docs", parents=[common], help="list documents")
    docs.add_argument("--json", action="store_true")
    docs.add_argument("--tag", help="only the documents with this tag")

    tag = commands.add_parser("tag", parents=[common], help="tag a document (or --remove tags)")
    tag.add_argument("document", help="file name, path or id prefix")
    tag.add_argument("tags", nargs="+")
    tag.add_argument("--remove", action="store_true", help="remove these tags instead")

    evaluate = commands.add_parser("eval", help="measure retrieval or answer quality")
    kinds = evaluate.add_subparsers(dest="kind", required=True)
    beir = kinds.add_parser("retrieval", parents=[common], help="nDCG@10, recall, MRR on BEIR")
    beir.add_argument("--beir", type=Path, required=True, help="BEIR folder (corpus.jsonl...)")
    beir.add_argument("--split", default="test", help="qrels/<split>.tsv")
    squad = kinds.add_parser("qa", parents=[common], help="exact match, F1, refusals on SQuAD")
    squad.add_argument("--squad", type=Path, required=True, help="SQuAD-format questions")
    squad.add_argument("--passages", type=Path, help="parallel file whose paragraphs are indexed")
    _style_argument(squad)
    _engine_arguments(squad, "answer the questions")
    compare = kinds.add_parser(
        "compare", help="paired comparison of two `eval qa --out` files, with 95% CIs"
    )
    compare.add_argument("first", type=Path)
    compare.add_argument("second", type=Path)
    for kind in (beir, squad):
        kind.add_argument("--limit", type=int, help="sample this many questions")
        kind.add_argument("--seed", type=int, default=0)
        kind.add_argument("--retrieval", choices=["hybrid", "dense", "keyword"])
        kind.add_argument("--out", type=Path, help="JSON with every per-question result")

    serve = commands.add_parser("serve", parents=[common], help="start the web app")
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument("--host", default="localhost")

    api = commands.add_parser(
        "api", parents=[common], help="serve an OpenAI-compatible HTTP API (docs/api.md)"
    )
    api.add_argument("--host", default="127.0.0.1", help="other than loopback needs KBQA_API_KEY")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument(
        "--kb-root", type=Path, help="whose knowledge bases are models too (default: $KBQA_HOME)"
    )
    commands.add_parser("mcp", parents=[common], help="serve an MCP server over stdio")
    commands.add_parser("doctor", help="which protections the reading process has here")

    remove = commands.add_parser("remove", parents=[common], help="remove documents")
    remove.add_argument("documents", nargs="+", help="file name, path or id prefix")
    return parser


def _scope_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--doc",
        action="append",
        default=[],
        metavar="NAME",
        help="answer from this document only: name, path, id prefix or glob (repeatable)",
    )
    parser.add_argument(
        "--tag", action="append", default=[], help="answer from documents with this tag"
    )


def _scope(args: argparse.Namespace) -> Scope | None:
    """The scope ``--doc``/``--tag`` ask for; a --doc naming an existing file means its path."""
    from ..index.scope import Scope

    if not args.doc and not args.tag:
        return None
    documents = [
        str(Path(d).expanduser().resolve()) if "/" in d and Path(d).expanduser().is_file() else d
        for d in args.doc
    ]
    return Scope.of(documents, args.tag)


def _style_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--answer-style",
        choices=STYLES,
        help="evidence: the sentences that answer, verbatim (no LLM); short: only the "
        "answering words; sentence: one sentence phrased from them (default: the "
        "answer_style setting, KBQA_ANSWER_STYLE)",
    )


def _engine_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help=f"where to {what}: here, or on a Ray cluster (docs/scaling.md)",
    )
    parser.add_argument(
        "--ray-address",
        help="with --engine ray: the cluster (host:port); default: Ray started here",
    )


def _engine_problem(args: argparse.Namespace) -> str | None:
    if args.ray_address and args.engine != "ray":
        return "--ray-address needs --engine ray"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_runtime(getattr(args, "verbose", False))
    from ..errors import KbqaError

    try:
        return _COMMANDS[args.command](args)
    except KbqaError as error:
        say(f"kbqa: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        say(file=sys.stderr)
        return 130


def command_line() -> int:
    """The ``kbqa`` program: ``main`` on the process's arguments, then a quick exit.

    Once a model is loaded, the interpreter's final garbage collection walks the
    million objects torch, transformers and scikit-learn created: 1.1-1.3 s of every
    ``kbqa ingest`` or ``kbqa ask`` spent after the work is done. The process ends
    next, so they are frozen out of the collector (``gc.freeze``); exit handlers
    still run, files are still flushed and closed. Not in ``main``, which tests
    call in-process.
    """
    code = main()
    gc.freeze()
    return code


def _open(args: argparse.Namespace, create: bool = False) -> KnowledgeBase:
    """The knowledge base ``--kb`` names, with the settings of the environment."""
    from ..qa.knowledge_base import KnowledgeBase
    from ..settings import load_settings

    return KnowledgeBase.open(args.kb, settings=load_settings(), create=create)


def _ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..ingest.types import FileOutcome
    from ..text import printable

    progress = not args.no_progress and sys.stderr.isatty()
    problem = _engine_problem(args)
    if problem:
        say(f"kbqa ingest: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.reembed:
        _reembed_if_needed(args, progress)
    kb = _open(args, create=True)
    engine = None
    if args.engine == "ray":
        from ..ingest.distributed import RayIngest
        from ..settings import load_settings

        engine = RayIngest.from_settings(load_settings(), args.ray_address)

    def report(outcome: FileOutcome) -> None:
        if outcome.status == "failed":
            tqdm.write(printable(f"failed: {outcome.source}: {outcome.reason}"), file=sys.stderr)
        elif outcome.status == "removed":
            tqdm.write(printable(f"removed: {outcome.source}"), file=sys.stderr)
        for warning in outcome.warnings:
            tqdm.write(printable(f"warning: {outcome.source}: {warning}"), file=sys.stderr)

    result = kb.add(
        args.paths,
        password=args.password,
        sync=args.sync,
        progress=progress,
        on_outcome=report,
        engine=engine,
        tags=args.tag,
    )
    say(result.summary())
    return EXIT_PARTIAL if result.failed else EXIT_OK


def _reembed_if_needed(args: argparse.Namespace, progress: bool) -> None:
    from tqdm import tqdm

    from ..index.reembed import needs_reembedding, reembed
    from ..qa.knowledge_base import load_models
    from ..settings import load_settings
    from .web import originals  # the app's kept PDFs move with the knowledge base

    settings = load_settings()
    folder = Path(args.kb).expanduser() if args.kb else settings.default_kb
    embedder, _ = load_models(settings)
    if not needs_reembedding(folder, embedder):
        return
    say(f"{folder}: embedding its stored chunks again with {embedder.name}", file=sys.stderr)
    with tqdm(unit="chunk", disable=not progress, file=sys.stderr) as bar:

        def step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        count = reembed(folder, embedder, step, carry=(originals.FOLDER,))
    say(f"{folder}: {count} chunks re-embedded with {embedder.name}", file=sys.stderr)


def _ask(args: argparse.Namespace) -> int:
    if args.batch or args.question is None or _engine_problem(args) or args.engine != "local":
        return _ask_batch(args)
    kb = _open(args)
    scope = _scope(args)
    if args.json:
        answer = kb.ask(args.question, args.k, style=args.answer_style, scope=scope)
        print(json_text(answer.to_dict()))
        return EXIT_OK
    stream_answer(kb, args.question, args.k, style=args.answer_style, scope=scope)
    return EXIT_OK


def _ask_batch(args: argparse.Namespace) -> int:
    from ..settings import load_settings
    from .batch import Answerer, run_batch

    problem = _engine_problem(args)
    if args.question is not None and args.batch:
        problem = "give a question or --batch FILE, not both"
    elif not args.batch:
        problem = problem or (
            "--engine ray answers a --batch" if args.question else "give a question or --batch FILE"
        )
    elif not args.out:
        problem = "--batch needs --out FILE"
    elif args.out.expanduser().resolve() == args.batch.expanduser().resolve():
        problem = "--out must not be the --batch file"
    if problem:
        say(f"kbqa ask: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    answerer: Answerer | None = None
    if args.engine == "ray":
        from .batch_ray import answer_on_ray

        answerer = partial(answer_on_ray, address=args.ray_address)

    summary = run_batch(
        args.batch,
        args.out,
        load_settings(answer_style=args.answer_style),  # the Ray actors read it there too
        kb_folder=args.kb,
        answerer=answerer,
        default_k=args.k,
        default_scope=_scope(args),
        progress=sys.stderr.isatty(),
    )
    say(f"{summary.text()}; written to {args.out}", file=sys.stderr)
    return EXIT_PARTIAL if summary.errors else EXIT_OK


def _chat(args: argparse.Namespace) -> int:
    from .cli_chat import run_chat

    return run_chat(_open(args), args.answer_style, _scope(args), args.resume)


def _search(args: argparse.Namespace) -> int:
    kb = _open(args)
    hits = kb.search(args.query, args.k, scope=_scope(args))
    if args.json:
        print(json_text([dict(asdict(h.chunk), score=h.score) for h in hits]))
        return EXIT_OK
    for rank, hit in enumerate(hits, start=1):
        page = f", p. {hit.chunk.page}" if hit.chunk.page is not None else ""
        say(f"{rank}. {hit.score:.3f}  {Path(hit.chunk.source).name}{page}")
        say(f"   {snippet(hit.chunk.text, 200)}")
    return EXIT_OK


def _doctor(args: argparse.Namespace) -> int:
    from ..settings import load_settings
    from .doctor import run_doctor

    return run_doctor(load_settings())


def _documents(args: argparse.Namespace) -> int:
    return documents_command(_open(args), args)


def _eval(args: argparse.Namespace) -> int:
    from .cli_eval import compare_runs, evaluate

    if args.kind == "compare":
        return compare_runs(args.first, args.second)
    problem = _engine_problem(args) if args.kind == "qa" else None
    if problem:
        say(f"kbqa eval: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return evaluate(args)


def _serve(args: argparse.Namespace) -> int:
    """Run the Streamlit app (app/web/main.py) over the chosen knowledge base."""
    import subprocess
    from importlib import resources

    app = resources.files("kbqa.app.web") / "main.py"  # a script for Streamlit to run
    env = dict(os.environ)
    if args.kb:
        env["KBQA_KB"] = str(Path(args.kb).expanduser().resolve())
    command = [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.port", str(args.port), "--server.address", args.host,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]  # fmt: skip
    say(f"kbqa web app on http://{args.host}:{args.port}", file=sys.stderr)
    return subprocess.call(command, env=env)


def _api(args: argparse.Namespace) -> int:
    from ..settings import load_settings
    from .api.http import run

    run(load_settings(), args.kb, args.kb_root, args.host, args.port)
    return EXIT_OK


def _mcp(args: argparse.Namespace) -> int:
    from ..settings import load_settings
    from .mcp import run

    run(load_settings(), args.kb)
    return EXIT_OK


_COMMANDS = {
    "ingest": _ingest,
    "ask": _ask,
    "chat": _chat,
    "search": _search,
    "doctor": _doctor,
    "docs": _documents,
    "tag": _documents,
    "remove": _documents,
    "serve": _serve,
    "eval": _eval,
    "api": _api,
    "mcp": _mcp,
}

if __name__ == "__main__":
    sys.exit(command_line())
