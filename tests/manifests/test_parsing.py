"""Parsing one file: documents, line numbers mapped from pydantic's errors, and documents
that stay readable when a neighbour is broken."""

from __future__ import annotations

from georgebot.manifests.parsing import parse_file
from georgebot.model.specs import AgentSpec, Job
from tests.manifests.helpers import AGENTS, job


def test_each_document_of_a_file_is_parsed_with_its_starting_line():
    text = "# a comment first\n" + AGENTS + "---\n" + job("onboard-alice") + "---\n"

    parsed = parse_file("manifests/all.yaml", text)

    [agent, alice] = parsed.documents
    assert isinstance(agent.manifest, AgentSpec)
    assert isinstance(alice.manifest, Job)
    assert (agent.line, alice.line) == (2, 11)
    assert not parsed.broken


def test_invalid_yaml_mid_document_names_the_parsers_line_and_spares_the_others():
    broken = "---\nkind: Job\nmetadata:\n  name: x\n   bad: indent\n---\n"
    text = job("onboard-alice") + broken + job("onboard-bob")

    parsed = parse_file("manifests/jobs.yaml", text)

    [alice, broken, bob] = parsed.documents
    assert alice.manifest is not None and bob.manifest is not None
    [issue] = broken.issues
    assert issue.line == 11
    assert issue.message.startswith("invalid YAML: ")
    assert (issue.kind, issue.name) == ("-", "-")
    assert parsed.broken


def test_a_missing_field_is_reported_at_the_mapping_that_should_hold_it():
    text = "apiVersion: george/v1\nkind: Job\nmetadata:\n  name: onboard-alice\n"
    text += "spec:\n  params: {}\n"

    [doc] = parse_file("f.yaml", text).documents

    [issue] = doc.issues
    assert (issue.line, issue.column) == (5, 1)
    assert issue.message == "missing required field `template` in `spec`"
    assert doc.identified  # a job with a known name keeps its last generation


def test_a_missing_step_field_is_reported_at_the_step():
    text = AGENTS.replace("- shell: {commands: [tools/create-account]}", "- shell: {}")

    [doc] = parse_file("f.yaml", text).documents

    [issue] = doc.issues
    assert issue.line == 6
    assert issue.message == "missing required field `commands` in `spec.capabilities[0].shell`"


def test_an_unknown_field_lists_the_fields_when_no_name_is_close():
    text = AGENTS.replace("- slack:", "- chat:")

    [doc] = parse_file("f.yaml", text).documents

    assert any(
        i.line == 8 and i.message.startswith("unknown field `spec.capabilities[2].chat`; ")
        and "http, shell, slack" in i.message
        for i in doc.issues
    )


def test_an_ill_typed_value_shows_what_was_given():
    text = job("onboard-alice", deadline="soon")

    [doc] = parse_file("f.yaml", text).documents

    [issue] = doc.issues
    assert issue.line == 7
    assert issue.message.startswith("`spec.deadline`: 'soon' is not a duration")


def test_a_bad_name_leaves_the_document_unidentified():
    [doc] = parse_file("f.yaml", job("Onboard_Alice")).documents

    assert not doc.identified
    assert doc.issues[0].name == "Onboard_Alice"
    assert "is not a valid name: use lowercase letters, digits and '-'" in doc.issues[0].message


def test_a_document_that_is_not_a_mapping_is_an_error():
    parsed = parse_file("f.yaml", "- just\n- a list\n")

    [doc] = parsed.documents
    assert doc.issues[0].message.startswith("a manifest is a mapping with apiVersion, kind")
    assert parsed.broken


def test_a_file_that_is_not_utf8_is_an_error():
    [doc] = parse_file("f.yaml", b"kind: \xff\n").documents

    assert doc.issues[0].message == "the file is not UTF-8 text"


def test_empty_files_and_comment_only_documents_hold_nothing():
    assert parse_file("f.yaml", "").documents == ()
    assert parse_file("f.yaml", "# nothing yet\n---\n# still nothing\n").documents == ()


def test_a_yaml_bomb_is_refused_not_expanded():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 8):
        lines.append(f"{chr(97 + n)}: &{chr(97 + n)} [" + ", ".join([f"*{chr(96 + n)}"] * 10) + "]")
    text = "apiVersion: george/v1\nkind: Job\nmetadata: {name: boom}\n" + "\n".join(lines) + "\n"

    [doc] = parse_file("f.yaml", text).documents

    assert "more than 100000 values" in doc.issues[0].message


def test_documents_may_start_on_the_marker_line_and_follow_a_directive():
    text = (
        "%YAML 1.2\n"
        "--- {apiVersion: george/v1, kind: Job, metadata: {name: a}, spec: {template: t}}\n"
        "--- {apiVersion: george/v1, kind: Job, metadata: {name: b}, spec: {template: t}}\n"
        "...\n"
    )

    parsed = parse_file("f.yaml", text)

    assert [(d.name, d.line, d.issues) for d in parsed.documents] == [("a", 2, ()), ("b", 3, ())]
