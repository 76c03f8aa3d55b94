"""The page's few custom styles (answers, passages, reference badges)."""

CSS = """
<style>
.kbqa-brand { font-size: 1.6rem; font-weight: 700; letter-spacing: -0.02em; }
.kbqa-tagline { color: #6b7280; font-size: 0.85rem; margin: -0.2rem 0 0.6rem 0; }
.kbqa-title { font-size: 1.9rem; font-weight: 700; letter-spacing: -0.02em; line-height: 1.2; }
.kbqa-subtitle { color: #6b7280; font-size: 0.9rem; }
.kbqa-welcome {
  border: 1px solid rgba(128, 128, 128, 0.25); border-radius: 0.75rem;
  padding: 1rem 1.25rem; margin: 1rem 0; line-height: 1.6;
  background: rgba(59, 130, 246, 0.05);
}
.kbqa-answer { font-size: 1.05rem; line-height: 1.65; }
.kbqa-question { font-size: 1.05rem; line-height: 1.6; }
.kbqa-refusal {
  border-left: 4px solid #f59e0b; background: rgba(245, 158, 11, 0.08);
  padding: 0.6rem 0.9rem; border-radius: 0.4rem; font-size: 1.05rem;
}
.kbqa-ref {
  color: #1d4ed8; font-weight: 600; font-size: 0.75em; margin-left: 0.1em;
}
.kbqa-cursor { animation: kbqa-blink 1s steps(2, start) infinite; color: #9ca3af; }
@keyframes kbqa-blink { to { visibility: hidden; } }
.kbqa-source-head { font-size: 0.95rem; margin-bottom: 0.35rem; }
.kbqa-source-head .kbqa-ref { font-size: 0.9em; margin-right: 0.2em; }
.kbqa-score {
  float: right; color: #6b7280; font-size: 0.8rem;
  border: 1px solid rgba(128, 128, 128, 0.3); border-radius: 1rem; padding: 0 0.5rem;
}
.kbqa-passage {
  font-size: 0.92rem; line-height: 1.6; color: inherit;
  border-left: 3px solid rgba(128, 128, 128, 0.35); padding: 0.1rem 0 0.1rem 0.8rem;
}
.kbqa-removed { color: #b91c1c; font-size: 0.85em; margin-left: 0.3em; }
mark.kbqa-cited {
  background: rgba(255, 190, 40, 0.45); color: inherit; padding: 0 0.1em; border-radius: 0.2em;
}
[data-testid="stImage"] img {
  border: 1px solid rgba(128, 128, 128, 0.3); border-radius: 0.3rem;
  box-shadow: 0 1px 4px rgba(0, 0, 0, 0.08);
}
</style>
"""
