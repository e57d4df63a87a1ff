"""Hostile or oversized manifests — a YAML bomb, deep nesting, runaway templates, patterns that
backtrack, huge files — each become a manifest error at their file and line that names the
limit and how to raise it, while the other documents of the revision still load and later
commits still sync. Each limit is tried just under (it loads) and just over (it does not)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from jinja2.exceptions import TemplateRuntimeError

from georgebot.errors import ConfigError
from georgebot.manifests import templating
from georgebot.manifests.limits import DEFAULT, Limits
from georgebot.manifests.parsing import parse_file
from georgebot.manifests.snapshot import ManifestIssue, Snapshot
from georgebot.manifests.source import ManifestSource, load_worktree
from tests.manifests.helpers import AGENTS, TEMPLATE, GitRepo, job

MakeSource = Callable[..., ManifestSource]
GOOD = job("onboard-alice")  # a valid job kept beside every bad document: it must still load


def seed(repo: GitRepo, **files: str) -> None:
    """The helpers' agent and template, a good job, and `files` (name → text) under manifests/."""
    repo.write("manifests/agents.yaml", AGENTS)
    repo.write("manifests/templates.yaml", TEMPLATE)
    repo.write("manifests/jobs.yaml", GOOD)
    for name, text in files.items():
        repo.write(f"manifests/{name}", text)
    repo.commit("manifests")


def sync(make_source: MakeSource, repo: GitRepo, limits: Limits = DEFAULT) -> Snapshot:
    return make_source(repo.root, limits=limits).sync()


def errors_of(snapshot: Snapshot, file: str) -> list[ManifestIssue]:
    return [e for e in snapshot.errors if e.file == f"manifests/{file}"]


def assert_limit(issue: ManifestIssue, limit: str) -> None:
    """The message names the limit and the setting that raises it."""
    assert f"limit `{limit}` = " in issue.message
    assert f"GEORGE_LIMIT_{limit.upper()}" in issue.message


def assert_rest_loads(snapshot: Snapshot) -> None:
    assert "onboard-alice" in snapshot.jobs
    assert "onboard-employee" in snapshot.templates and "it-helper" in snapshot.agents


# --- a YAML bomb and deep nesting ----------------------------------------------------------

BOMB = """\
- &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
- &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
- &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
- &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
- &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
- &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
- &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
- &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
- &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_a_billion_laughs_is_an_error_at_its_line_and_the_rest_loads(
    repo: GitRepo, make_source: MakeSource
):
    seed(repo, **{"bomb.yaml": BOMB + "---\n" + job("onboard-bob", "Bob Brown")})

    snapshot = sync(make_source, repo)

    [issue] = errors_of(snapshot, "bomb.yaml")
    # a: 10 values, b: 91, c: 820, d: 7,381, e: 66,430; f's first *e passes 100,000.
    assert issue.line == 6
    assert "more than 100000 values once its aliases are expanded" in issue.message
    assert_limit(issue, "nodes")
    assert "onboard-bob" in snapshot.jobs  # the next document of the same file
    assert_rest_loads(snapshot)


def test_a_bomb_does_not_stop_later_commits_from_syncing(repo: GitRepo, make_source: MakeSource):
    seed(repo, **{"bomb.yaml": BOMB})
    source = make_source(repo.root)
    assert errors_of(source.sync(), "bomb.yaml")

    repo.write("manifests/bomb.yaml", job("onboard-bob", "Bob Brown"))
    repo.commit("defuse")
    snapshot = source.sync()

    assert snapshot.valid, snapshot.errors
    assert {"onboard-alice", "onboard-bob"} <= set(snapshot.jobs)


def test_nesting_5000_deep_is_an_error_at_its_line(repo: GitRepo, make_source: MakeSource):
    deep = job("onboard-bob", "Bob Brown") + "  deadline:\n    " + "[" * 5000 + "]" * 5000 + "\n"
    seed(repo, **{"deep.yaml": deep + "---\n" + job("onboard-carol", "Carol King")})

    snapshot = sync(make_source, repo)

    [issue] = errors_of(snapshot, "deep.yaml")
    assert issue.line == 8
    assert "nests deeper than 64 levels" in issue.message
    assert_limit(issue, "depth")
    assert "onboard-carol" in snapshot.jobs
    assert_rest_loads(snapshot)


def nested(levels: int) -> str:
    """A Job whose `params.team` holds `levels` lists one in another: the root mapping is
    level 1, `spec` 2, `params` 3, so the deepest list is level 3 + `levels`."""
    return job("onboard-bob").replace("team: payments", "team: " + "[" * levels + "]" * levels)


def test_depth_edge():
    [under] = parse_file("f.yaml", nested(61)).documents
    [over] = parse_file("f.yaml", nested(62)).documents

    assert under.issues == () and under.manifest is not None
    [issue] = over.issues
    assert (issue.file, issue.line) == ("f.yaml", 6)
    assert_limit(issue, "depth")


def test_an_alias_counts_its_depth_where_it_is_used():
    text = "a: &deep " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*deep" + "]" * 30 + "\n"

    [doc] = parse_file("f.yaml", text).documents

    [issue] = doc.issues
    assert issue.line == 2
    assert_limit(issue, "depth")


# --- the size of files, documents and values ---------------------------------------------


def padded(size: int, name: str) -> str:
    """A good job named `name`, made exactly `size` bytes long with comment lines."""
    text = GOOD.replace("onboard-alice", name)
    line = "# " + "x" * 97 + "\n"
    text += line * ((size - len(text) - 2) // len(line))
    return text + "#" * (size - len(text) - 1) + "\n"


def test_file_size_edge(repo: GitRepo, make_source: MakeSource):
    seed(repo, **{
        "under.yaml": padded(1 << 20, "onboard-pad"),
        "over.yaml": padded((1 << 20) + 1, "onboard-big"),
    })

    snapshot = sync(make_source, repo)

    assert not errors_of(snapshot, "under.yaml") and "onboard-pad" in snapshot.jobs
    [issue] = errors_of(snapshot, "over.yaml")
    assert issue.line == 1
    assert "the file is 1048577 bytes" in issue.message
    assert_limit(issue, "file_bytes")
    assert "manifests/over.yaml" in snapshot.broken_files  # its jobs are kept, not pruned
    assert_rest_loads(snapshot)


def test_a_raised_file_size_limit_loads_the_larger_file(repo: GitRepo, make_source: MakeSource):
    seed(repo, **{"big.yaml": padded((1 << 20) + 1, "onboard-pad")})

    limits = Limits.from_environment({"GEORGE_LIMIT_FILE_BYTES": "2097152"})
    snapshot = sync(make_source, repo, limits)

    assert limits.file_bytes == 2 * 1024 * 1024 and limits.nodes == DEFAULT.nodes
    assert snapshot.valid, snapshot.errors
    assert "onboard-pad" in snapshot.jobs


def test_a_file_on_disk_over_the_limit_is_refused_unread(repo: GitRepo):
    seed(repo)
    repo.write("manifests/big.yaml", padded((1 << 20) + 1, "onboard-big"))

    snapshot = load_worktree(repo.root, "manifests", "#george")

    [issue] = errors_of(snapshot, "big.yaml")
    assert_limit(issue, "file_bytes")
    assert_rest_loads(snapshot)


def test_documents_per_file_edge(repo: GitRepo, make_source: MakeSource):
    def jobs(prefix: str, count: int) -> str:
        return "---\n".join(job(f"{prefix}-{n}", f"Person {n}") for n in range(count))

    seed(repo, **{"three.yaml": jobs("three", 3), "four.yaml": jobs("four", 4)})

    snapshot = sync(make_source, repo, Limits(documents=3))

    assert not errors_of(snapshot, "three.yaml")
    [issue] = errors_of(snapshot, "four.yaml")
    assert issue.line == 21  # the fourth document's `---`
    assert_limit(issue, "documents")
    assert {"four-0", "four-1", "four-2"} <= set(snapshot.jobs)  # those before it load
    assert_rest_loads(snapshot)


def test_values_per_document_edge():
    # The good job has 10 values: the root mapping, apiVersion, kind, metadata, name, spec,
    # template, params and its two values (keys are not counted).
    [under] = parse_file("f.yaml", GOOD, Limits(nodes=10)).documents
    [over] = parse_file("f.yaml", GOOD, Limits(nodes=9)).documents

    assert under.issues == () and under.manifest is not None
    [issue] = over.issues
    assert issue.line == 6  # the params mapping, where the count passes 9
    assert_limit(issue, "nodes")


def with_name(length: int) -> str:
    return (
        "apiVersion: george/v1\nkind: Job\nmetadata: {name: onboard-long}\nspec:\n"
        "  template: onboard-employee\n  params:\n"
        f"    name: {'a' * length}\n    team: payments\n"
    )


def test_value_size_edge(repo: GitRepo, make_source: MakeSource):
    longer = with_name(65_537).replace("-long}", "-longer}")
    seed(repo, **{"long.yaml": with_name(65_536), "longer.yaml": longer})

    snapshot = sync(make_source, repo)

    assert "onboard-long" in snapshot.jobs
    [issue] = errors_of(snapshot, "longer.yaml")
    assert (issue.line, issue.column, issue.kind, issue.name) == (7, 11, "Job", "onboard-longer")
    assert "a value is 65537 characters long" in issue.message
    assert_limit(issue, "value_chars")
    assert snapshot.invalid_jobs["onboard-longer"] == issue  # a known job: kept, marked invalid
    assert_rest_loads(snapshot)


def chain_template(steps: int, name: str = "chain") -> str:
    """`steps` steps in reverse order of need (step k needs k + 1): deeper than Python recurses."""
    lines = [
        "apiVersion: george/v1", "kind: TaskTemplate", f"metadata: {{name: {name}}}", "spec:",
        "  variables:", "    who: {type: string}", "  steps:",
    ]
    for k in range(steps):
        needs = f", needs: [s{k + 1}]" if k + 1 < steps else ""
        run = 'run: [tools/create-account, "{{ who }}"]'
        lines.append(f"    - {{name: s{k}, agent: it-helper, {run}{needs}}}")
    return "\n".join(lines) + "\n"


def chain_job(template: str = "chain") -> str:
    return (f"apiVersion: george/v1\nkind: Job\nmetadata: {{name: {template}-job}}\nspec:\n"
            f"  template: {template}\n  params: {{who: Ann}}\n")


def test_steps_per_template_edge():
    [under] = parse_file("t.yaml", chain_template(3), Limits(steps=3)).documents
    [over] = parse_file("t.yaml", chain_template(4), Limits(steps=3)).documents

    assert under.issues == () and under.manifest is not None
    [issue] = over.issues
    assert (issue.line, issue.kind, issue.name) == (11, "TaskTemplate", "chain")  # the 4th step
    assert "the template has 4 steps" in issue.message
    assert_limit(issue, "steps")


def test_a_template_of_10000_steps_loads_with_the_defaults(repo: GitRepo, make_source: MakeSource):
    seed(repo, **{"chain.yaml": chain_template(10_000) + "---\n" + chain_job()})

    snapshot = sync(make_source, repo)

    assert snapshot.valid, snapshot.errors[:3]
    assert len(snapshot.jobs["chain-job"].steps) == 10_000


# --- rendering -----------------------------------------------------------------------------


def one_step(text: str, name: str = "t") -> str:
    """A template of one step whose second argv element is `text`, and a job of it."""
    return (
        f"apiVersion: george/v1\nkind: TaskTemplate\nmetadata: {{name: {name}}}\nspec:\n"
        "  variables:\n    who: {type: string, required: true}\n  steps:\n"
        f"    - name: go\n      agent: it-helper\n      run: [tools/create-account, {text!r}]\n"
        f"---\napiVersion: george/v1\nkind: Job\nmetadata: {{name: {name}-job}}\nspec:\n"
        f"  template: {name}\n  params: {{who: Ann}}\n"
    )


def render_issue(snapshot: Snapshot, file: str) -> ManifestIssue:
    [issue] = errors_of(snapshot, file)
    assert (issue.line, issue.kind) == (16, "Job")  # the job's `template:` line
    assert "cannot be rendered" in issue.message
    assert f"(the string is at manifests/{file}:10)" in issue.message
    return issue


def test_nested_loops_end_as_an_error_of_the_job(repo: GitRepo, make_source: MakeSource):
    loops = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    seed(repo, **{"loops.yaml": one_step(loops)})

    snapshot = sync(make_source, repo)

    issue = render_issue(snapshot, "loops.yaml")
    assert "template `t`, step `go`, `run[1]`" in issue.message
    assert_limit(issue, "render_work")
    assert "t-job" in snapshot.invalid_jobs
    assert_rest_loads(snapshot)


def test_a_huge_multiplication_is_refused_before_it_is_made(repo: GitRepo, make_source: MakeSource):
    seed(repo, **{"times.yaml": one_step("{{ 'x' * 300000000 }}")})

    snapshot = sync(make_source, repo)

    issue = render_issue(snapshot, "times.yaml")
    assert "the operator `*` would make 300000000 characters" in issue.message
    assert_limit(issue, "rendered_chars")
    assert_rest_loads(snapshot)


@pytest.mark.parametrize(
    "text",
    [
        "{{ 'x' | center(1000000000) }}",
        "{{ '%999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{% set a = [who] * 1000 %}{% set b = [a] * 1000 %}{{ b }}",
        "{{ who.replace('', who * 60000) }}",
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(60) }}",
    ],
)
def test_other_ways_to_make_a_lot_end_at_a_limit(repo: GitRepo, make_source: MakeSource, text: str):
    seed(repo, **{"much.yaml": one_step(text)})

    snapshot = sync(make_source, repo)

    issue = render_issue(snapshot, "much.yaml")
    assert "GEORGE_LIMIT_RENDER" in issue.message
    assert_rest_loads(snapshot)


def test_rendered_string_size_edge(repo: GitRepo, make_source: MakeSource):
    seed(repo, **{
        "under.yaml": one_step("{{ 'x' * 262144 }}", "under"),
        "over.yaml": one_step("{{ 'x' * 262144 }}!", "over"),
    })

    snapshot = sync(make_source, repo)

    assert snapshot.jobs["under-job"].steps[0].run == ["tools/create-account", "x" * 262_144]
    issue = render_issue(snapshot, "over.yaml")
    assert_limit(issue, "rendered_chars")


def test_rendered_job_size_edge(repo: GitRepo, make_source: MakeSource):
    # "Hello Ann!" renders 10 characters: `Hello ` 6, `Ann` 3, `!` 1.
    seed(repo, **{"hello.yaml": one_step("Hello {{ who }}!")})

    under = sync(make_source, repo, Limits(job_rendered_chars=10))
    over = sync(make_source, repo, Limits(job_rendered_chars=9))

    assert under.jobs["t-job"].steps[0].run == ["tools/create-account", "Hello Ann!"]
    issue = render_issue(over, "hello.yaml")
    assert_limit(issue, "job_rendered_chars")


def test_render_work_edge_is_counted_not_timed(repo: GitRepo, make_source: MakeSource):
    loop = "{% for i in range(50) %}{{ i }}{% endfor %}{{ who | upper }}"
    with templating.budget(DEFAULT) as spent:
        templating.ENV.from_string(loop).render(who="Ann")
    work = spent.work  # the same on any machine, however busy
    seed(repo, **{"loop.yaml": one_step(loop)})

    under = sync(make_source, repo, Limits(render_work=work))
    over = sync(make_source, repo, Limits(render_work=work - 1))

    assert "t-job" in under.jobs
    assert_limit(render_issue(over, "loop.yaml"), "render_work")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{% include 'other.yaml' %}", "cannot include, import or extend"),
        ("{{ [1, 2] | random }}", "No filter named 'random'"),
        ("{{ lipsum() }}", "`{{ lipsum }}`"),
    ],
)
def test_template_features_that_could_not_render_the_same_twice_are_refused(
    repo: GitRepo, make_source: MakeSource, text: str, problem: str
):
    seed(repo, **{"odd.yaml": one_step(text)})

    snapshot = sync(make_source, repo)

    [template_error, job_error] = errors_of(snapshot, "odd.yaml")
    assert (template_error.line, template_error.kind) == (10, "TaskTemplate")
    assert problem in template_error.message
    assert job_error.kind == "Job"
    assert_rest_loads(snapshot)


# --- patterns ------------------------------------------------------------------------------


def quoted(text: str) -> str:
    """`text` as a YAML single-quoted scalar: backslashes stay as they are."""
    return "'" + text.replace("'", "''") + "'"


def patterned(pattern: str, values: dict[str, str]) -> str:
    docs = [
        "apiVersion: george/v1\nkind: TaskTemplate\nmetadata: {name: p}\nspec:\n  variables:\n"
        f"    who: {{type: string, pattern: {quoted(pattern)}}}\n  steps:\n"
        '    - {name: go, agent: it-helper, run: [tools/create-account, "{{ who }}"]}\n'
    ]
    for name, value in values.items():
        docs.append(f"apiVersion: george/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n"
                    f"  template: p\n  params:\n    who: {quoted(value)}\n")
    return "---\n".join(docs)


def test_a_backtracking_pattern_runs_in_linear_time(repo: GitRepo, make_source: MakeSource):
    # With Python's `re` this value takes about 2**40 steps: the sync would never end.
    seed(repo, **{"p.yaml": patterned("^(a+)+$", {"fine": "aaaa", "evil": "a" * 40 + "!"})})

    snapshot = sync(make_source, repo)

    assert "fine" in snapshot.jobs
    [issue] = errors_of(snapshot, "p.yaml")
    assert (issue.line, issue.name) == (24, "evil")
    assert "does not match the pattern '^(a+)+$'" in issue.message
    assert not [w for w in snapshot.warnings if w.file == "manifests/p.yaml"]
    assert_rest_loads(snapshot)


def test_a_pattern_re2_cannot_run_warns_and_is_checked_within_a_time_limit(
    repo: GitRepo, make_source: MakeSource
):
    seed(repo, **{"p.yaml": patterned("^(a|a)+(?!b)$", {"fine": "aaaa", "evil": "a" * 40 + "!"})})

    snapshot = sync(make_source, repo)

    [warning] = [w for w in snapshot.warnings if w.file == "manifests/p.yaml"]
    assert (warning.line, warning.kind) == (6, "TaskTemplate")
    assert "a negative lookahead or lookbehind" in warning.message
    assert "GEORGE_LIMIT_PATTERN_SECONDS" in warning.message
    assert "fine" in snapshot.jobs
    [issue] = errors_of(snapshot, "p.yaml")
    assert (issue.line, issue.name) == (24, "evil")  # the parameter's line
    assert "takes too long (the pattern backtracks)" in issue.message
    assert_limit(issue, "pattern_seconds")


def test_patterns_keep_pythons_unicode_meaning(repo: GitRepo, make_source: MakeSource):
    seed(repo, **{"p.yaml": patterned(r"^\w+( \w+)*$", {"jose": "José Núñez", "bad": "José!"})})

    snapshot = sync(make_source, repo)

    assert snapshot.jobs["jose"].params == {"who": "José Núñez"}
    assert [e.name for e in errors_of(snapshot, "p.yaml")] == ["bad"]


# --- other shapes of a hostile file --------------------------------------------------------


def test_a_file_of_markers_only_is_read_in_linear_time():
    assert parse_file("f.yaml", "---\n" * 250_000).documents == ()


def test_a_number_python_cannot_read_is_an_error_of_its_document():
    text = GOOD.replace("Alice Smith", "1" * 5000) + "---\n" + job("onboard-bob")

    first, second = parse_file("f.yaml", text).documents

    assert "invalid YAML" in first.issues[0].message and "4300 digits" in first.issues[0].message
    assert second.manifest is not None


def test_limits_are_read_from_the_settings_and_checked():
    limits = Limits.from_environment({"GEORGE_LIMIT_STEPS": "20000", "GEORGE_LIMIT_PATTERN_SECONDS": "0.5"})
    assert (limits.steps, limits.pattern_seconds, limits.depth) == (20_000, 0.5, DEFAULT.depth)
    with pytest.raises(ConfigError, match="GEORGE_LIMIT_DEPTH"):
        Limits.from_environment({"GEORGE_LIMIT_DEPTH": "deep"})
    with pytest.raises(ConfigError, match="GEORGE_LIMIT_NODES"):
        Limits.from_environment({"GEORGE_LIMIT_NODES": "0"})


def test_a_template_rendered_outside_a_budget_is_refused_not_unbounded():
    with pytest.raises(TemplateRuntimeError, match="outside a render budget"):
        templating.ENV.from_string("{{ 'x' | upper }}").render()
