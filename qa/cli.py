"""``kbqa``: ingest documents and ask cited questions from the terminal."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .answer import Answer

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
MAX_K = 100  # as Settings.top_k


def say(*parts: object, file: TextIO | None = None, end: str = "\n", flush: bool = False) -> None:
    """``print`` for anything that may hold document text, names or model output.

    Control and format characters are shown escaped (``kbqa.text.printable``), so a
    file cannot send escape sequences to the terminal or forge listing lines.
    """
    from ..text import printable

    text = " ".join(printable(str(part), keep_newlines=True) for part in parts)
    print(text, file=file or sys.stdout, end=end, flush=flush)


def json_text(value: object) -> str:
    """JSON with non-ASCII kept readable but control/format characters as \\u escapes."""
    import unicodedata

    text = json.dumps(value, ensure_ascii=False, indent=2)
    return "".join(
        f"\\u{ord(ch):04x}" if ch not in "\n " and unicodedata.category(ch) in _HIDDEN else ch
        for ch in text
    )


_HIDDEN = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


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
    _engine_arguments(ingest, "read, chunk and embed")

    ask = commands.add_parser("ask", parents=[common], help="answer one question (or a batch)")
    ask.add_argument("question", nargs="?", help="the question (or --batch FILE --out FILE)")
    ask.add_argument("--batch", type=Path, help="JSON Lines of questions (docs/scaling.md)")
    ask.add_argument("--out", type=Path, help="with --batch: JSON Lines answers, in input order")
    _engine_arguments(ask, "answer a --batch")
    ask.add_argument("-k", type=_top_k, help=f"passages to retrieve (1-{MAX_K})")
    ask.add_argument("--json", action="store_true", help="print the whole Answer as JSON")

    commands.add_parser("chat", parents=[common], help="interactive chat in the terminal")

    search = commands.add_parser("search", parents=[common], help="nearest passages, no LLM")
    search.add_argument("query")
    search.add_argument("-k", type=_top_k, default=5, help=f"passages to show (1-{MAX_K})")
    search.add_argument("--json", action="store_true")

    docs = commands.add_parser("docs", parents=[common], help="list documents")
    docs.add_argument("--json", action="store_true")

    evaluate = commands.add_parser("eval", help="measure retrieval or answer quality")
    kinds = evaluate.add_subparsers(dest="kind", required=True)
    beir = kinds.add_parser("retrieval", parents=[common], help="nDCG@10, recall, MRR on BEIR")
    beir.add_argument("--beir", type=Path, required=True, help="BEIR folder (corpus.jsonl...)")
    beir.add_argument("--split", default="test", help="qrels/<split>.tsv")
    squad = kinds.add_parser("qa", parents=[common], help="exact match, F1, refusals on SQuAD")
    squad.add_argument("--squad", type=Path, required=True, help="SQuAD-format questions")
    squad.add_argument("--passages", type=Path, help="parallel file whose paragraphs are indexed")
    squad.add_argument(
        "--answer-style", choices=["sentence", "short"], help="short: the answering words only"
    )
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

    remove = commands.add_parser("remove", parents=[common], help="remove documents")
    remove.add_argument("documents", nargs="+", help="file name, path or id prefix")
    return parser


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
    _configure_runtime(getattr(args, "verbose", False))
    from ..errors import KbqaError

    try:
        return _COMMANDS[args.command](args)
    except KbqaError as error:
        say(f"kbqa: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        say(file=sys.stderr)
        return 130


def _configure_runtime(verbose: bool) -> None:
    # Offline by design: nothing is fetched from a model hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def _open(args: argparse.Namespace, create: bool = False):  # type: ignore[no-untyped-def]
    from .knowledge_base import KnowledgeBase

    return KnowledgeBase.open(args.kb, create=create)


def _ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..ingest.batch import FileOutcome
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
        from .settings import load_settings

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
    )
    say(result.summary())
    return EXIT_PARTIAL if result.failed else EXIT_OK


def _reembed_if_needed(args: argparse.Namespace, progress: bool) -> None:
    from tqdm import tqdm

    from .knowledge_base import load_models
    from .reembed import needs_reembedding, reembed
    from .settings import load_settings

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

        count = reembed(folder, embedder, step)
    say(f"{folder}: {count} chunks re-embedded with {embedder.name}", file=sys.stderr)


def _ask(args: argparse.Namespace) -> int:
    if args.batch or args.question is None or _engine_problem(args) or args.engine != "local":
        return _ask_batch(args)
    kb = _open(args)
    if args.json:
        answer = kb.ask(args.question, args.k)
        print(json_text(answer.to_dict()))
        return EXIT_OK
    _stream_answer(kb, args.question, args.k)
    return EXIT_OK


def _ask_batch(args: argparse.Namespace) -> int:
    from .batch import run_batch
    from .settings import load_settings

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
    summary = run_batch(
        args.batch,
        args.out,
        load_settings(),
        kb_folder=args.kb,
        engine=args.engine,
        address=args.ray_address,
        default_k=args.k,
        progress=sys.stderr.isatty(),
    )
    say(f"{summary.text()}; written to {args.out}", file=sys.stderr)
    return EXIT_PARTIAL if summary.errors else EXIT_OK


def _stream_answer(kb, question: str, k: int | None):  # type: ignore[no-untyped-def]
    stream = kb.stream(question, k)
    for piece in stream:
        say(piece, end="", flush=True)
    say()
    answer = stream.answer
    if answer.refused and answer.reply != answer.text:
        say(f"\n{answer.text} (the draft above is not supported by the passages)")
    if answer.refused:
        why = answer.answerability.reason if answer.answerability else ""
        say(f"\n(not in the documents{': ' + why if why else ''}; closest passages found:)")
        for passage in answer.passages[:3]:
            say(f"  {passage.label()} (score {passage.score:.2f})")
    elif answer.citations:
        if answer.text != answer.reply:
            say(f"\n{answer.text}")
        say("\nSources:")
        for citation in answer.citations:
            say(f"  {citation.label()} (score {citation.score:.2f})")
            quoted = _quoted(answer, citation.number)
            say(
                f"      {quoted}"
                if quoted
                else f"      {_snippet(citation.text, focus=answer.reply)}"
            )
    else:
        say("\n(the model cited no passage; check the answer against the sources: /sources)")
    return answer


def _quoted(answer: Answer, number: int) -> str:
    """The answer's quotes from passage ``[number]``, each in “…”, on one line."""
    seen: list[str] = []
    for quote in answer.quotes:
        text = " ".join(quote.text.split())
        if quote.number == number and text not in seen:
            seen.append(text)
    return " ".join(f"“{text}”" for text in seen)


def _chat(args: argparse.Namespace) -> int:
    kb = _open(args)
    documents = kb.documents()
    names = ", ".join(d.name for d in documents[:5]) + (", ..." if len(documents) > 5 else "")
    say(f"kbqa chat over {kb.folder} ({len(documents)} documents: {names})")
    say("Ask in Spanish or English. /sources shows the passages of the last answer; /quit leaves.")
    last: Answer | None = None
    while True:
        try:
            question = input("\n> ").strip()
        except EOFError:
            say()
            return EXIT_OK
        if not question:
            continue
        if question in ("/quit", "/exit"):
            return EXIT_OK
        if question == "/sources":
            for passage in last.passages if last else []:
                say(f"{passage.label()} (score {passage.score:.2f})")
                say(f"    {_snippet(passage.text, 300)}")
                quoted = _quoted(last, passage.number) if last else ""
                if quoted:
                    say(f"    quoted: {quoted}")
            continue
        last = _stream_answer(kb, question, None)


def _search(args: argparse.Namespace) -> int:
    kb = _open(args)
    hits = kb.search(args.query, args.k)
    if args.json:
        print(json_text([dict(asdict(h.chunk), score=h.score) for h in hits]))
        return EXIT_OK
    for rank, hit in enumerate(hits, start=1):
        page = f", p. {hit.chunk.page}" if hit.chunk.page is not None else ""
        say(f"{rank}. {hit.score:.3f}  {Path(hit.chunk.source).name}{page}")
        say(f"   {_snippet(hit.chunk.text, 200)}")
    return EXIT_OK


def _docs(args: argparse.Namespace) -> int:
    kb = _open(args)
    records = kb.documents()
    if args.json:
        print(json_text([asdict(r) for r in records]))
        return EXIT_OK
    for r in records:
        ocr = f"  ({r.ocr_summary()})" if r.ocr_pages else ""  # pages read from pictures
        say(f"{r.doc_id[:12]}  {r.pages:4d} p  {r.chunks:5d} chunks  {r.added_at}  {r.name}{ocr}")
    say(f"{len(records)} documents in {kb.folder}")
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    from ..errors import KbqaError

    kb = _open(args)
    status = EXIT_OK
    for document in args.documents:
        try:
            record = kb.remove(document)
            say(f"removed: {record.name} ({record.doc_id[:12]}, {record.chunks} chunks)")
        except KbqaError as error:
            say(f"kbqa: error: {error}", file=sys.stderr)
            status = EXIT_ERROR
    return status


def _eval(args: argparse.Namespace) -> int:
    from . import evaluation
    from .knowledge_base import KnowledgeBase
    from .settings import load_settings

    if args.kind == "compare":
        return _compare(args)
    problem = _engine_problem(args) if args.kind == "qa" else None
    if problem:
        say(f"kbqa eval: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    settings = load_settings(
        retrieval=args.retrieval, answer_style=getattr(args, "answer_style", None)
    )
    source = args.beir if args.kind == "retrieval" else (args.passages or args.squad)
    model = re.sub(r"[^\w.-]+", "_", settings.embedding_model)[-40:]
    folder = (
        args.kb or settings.home / "eval" / f"{Path(source).stem}-{model}-{settings.chunk_tokens}"
    )
    kb = KnowledgeBase.open(folder, settings=settings)
    progress = sys.stderr.isatty()
    if args.kind == "retrieval":
        data = evaluation.load_beir(args.beir, args.split)
        result = evaluation.evaluate_retrieval(kb, data, limit=args.limit, seed=args.seed,
                                               progress=progress)  # fmt: skip
        table = result["metrics"]
        detail = "per_query"
    else:
        from .batch import evaluate_answers_batch

        result = evaluate_answers_batch(kb, args.squad, args.passages, args.limit, args.seed,
                                        settings=settings, engine=args.engine,
                                        address=args.ray_address, progress=progress)  # fmt: skip
        table = result["summary"]
        detail = "per_question"
    result["configuration"] = evaluation.run_configuration(kb)
    result["command"] = "kbqa " + " ".join(sys.argv[1:])
    intervals = result.get("ci95", {})
    for name, value in table.items():
        interval = intervals.get(name)
        shown = f"  95% CI [{interval[0]}, {interval[1]}]" if interval else ""
        say(f"{name:>20}  {value}{shown}")
    counts = {k: v for k, v in result.items() if k not in (detail, "configuration", "metrics",
                                                           "summary", "ci95")}  # fmt: skip
    say(json.dumps(counts, ensure_ascii=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n")
        say(f"results written to {args.out}", file=sys.stderr)
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    """Second run minus first, over the questions both answered, with paired 95% CIs."""
    from .evaluation import compare_answers

    runs = []
    for path in (args.first, args.second):
        try:
            runs.append(json.loads(path.read_text(encoding="utf-8"))["per_question"])
        except (OSError, ValueError, KeyError) as error:
            say(f"kbqa: error: {path}: not an `eval qa --out` file ({error})", file=sys.stderr)
            return EXIT_ERROR
    result = compare_answers(runs[0], runs[1])
    say(f"{result['paired_questions']} questions in both runs; second minus first:")
    for name, row in result["metrics"].items():
        low, high = row["ci95"]
        verdict = "no difference" if low <= 0 <= high else "differs"
        say(f"{name:>20}  {row['first']:>8} -> {row['second']:<8}  "
            f"{row['difference']:+.4f}  95% CI [{low}, {high}]  {verdict}")  # fmt: skip
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    """Run the Streamlit app (app/main.py) over the chosen knowledge base."""
    import subprocess
    from importlib import resources

    app = resources.files("kbqa.app") / "main.py"  # a script for Streamlit to run
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
    from .serve.http import run
    from .settings import load_settings

    run(load_settings(), args.kb, args.kb_root, args.host, args.port)
    return EXIT_OK


def _mcp(args: argparse.Namespace) -> int:
    from .serve.mcp_server import run
    from .settings import load_settings

    run(load_settings(), args.kb)
    return EXIT_OK


def _snippet(text: str, limit: int = 160, focus: str = "") -> str:
    """The passage flattened to ``limit`` characters, around the first word of
    ``focus`` (the answer) that it contains, so the cited part shows."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    lowered = flat.lower()
    words = [w for w in re.findall(r"\w+", focus.lower()) if len(w) > 3 or w.isdigit()]
    found = [lowered.find(w) for w in words if w in lowered]
    start = max(0, min(found) - limit // 3) if found else 0
    piece = flat[start : start + limit - 2]
    return ("…" if start else "") + piece + "…"


_COMMANDS = {
    "ingest": _ingest,
    "ask": _ask,
    "chat": _chat,
    "search": _search,
    "docs": _docs,
    "remove": _remove,
    "serve": _serve,
    "eval": _eval,
    "api": _api,
    "mcp": _mcp,
}

if __name__ == "__main__":
    sys.exit(main())
