"""`/george run TEMPLATE` opens a modal with the template's variables; submitting it commits
`manifests/jobs/<name>.yaml` to Git authored as the Slack user (name and e-mail from
`users.info`), and what `validate` says of it comes back in the modal. `/george cancel JOB`
commits its removal. Through the local Slack, against a real Git repository."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from georgebot.manifests.writing import JobWriter
from georgebot.model.specs import TaskTemplate
from tests.devslack.test_page_in_browser import CHROMIUM, CHROMIUM_ARGS
from tests.engine.at_rest import eventually
from tests.manifests.helpers import AGENTS, GitRepo
from tests.slack.support import ALEX, OPS, George

TEMPLATE = """\
apiVersion: george/v1
kind: TaskTemplate
metadata: {name: onboard-employee}
spec:
  description: Accounts and a laptop for a new employee.
  variables:
    name: {type: string, required: true}
    level: {type: enum, values: [junior, senior], default: junior}
    laptops: {type: int, min: 1, max: 3, default: 1}
    team: {fuzzy: true}
  steps:
    - name: create-account
      agent: it-helper
      run: [tools/create-account, "{{ name }}", "{{ level }}", "{{ laptops }}"]
"""


def direct_messages(george: George, user: str) -> list[str]:
    state = george.slack.state
    return [m.text for c in state.channels.values() if c.is_im and c.im_user == user
            for m in state.top_level(c.id)]


@pytest.fixture
def remote(tmp_path: Path) -> GitRepo:
    work = GitRepo(tmp_path / "seed")
    work.write("manifests/agents.yaml", AGENTS)
    work.write("manifests/templates/onboard.yaml", TEMPLATE)
    work.commit("seed")
    bare = GitRepo(tmp_path / "remote.git", bare=True)
    work.git("push", "-q", str(bare.root), "main")
    return bare


@pytest.fixture
async def writing(george: George, remote: GitRepo, tmp_path: Path) -> George:
    """George, synced to a revision with the template, writing to `remote`."""
    template = TaskTemplate.model_validate(YAML(typ="safe").load(TEMPLATE))
    george.source.commit()
    george.source.snapshot = replace(george.source.snapshot, templates={"onboard-employee": template})
    george.engine.wake(sync=True)
    await eventually(lambda: george.engine.snapshot is not None and george.engine.snapshot.templates,
                     what="synced a revision with the template")
    assert george.surface.listeners is not None
    george.surface.listeners.writer = JobWriter(str(remote.root), branch="main", path="manifests",
                                                home=tmp_path / "home")
    return george


async def test_run_opens_a_form_of_the_templates_variables_and_commits_the_job_as_the_person(
    writing: George, remote: GitRepo
) -> None:
    george = writing
    await george.slack.slash(ALEX, OPS, "/george", "run onboard-employee")
    modal = await george.until(lambda: george.slack.modal(ALEX))
    kinds = {b["block_id"]: b["element"]["type"] for b in modal["blocks"] if b["type"] == "input"}
    assert kinds == {"job_name": "plain_text_input", "var:name": "plain_text_input",
                     "var:level": "static_select", "var:laptops": "number_input",
                     "var:team": "plain_text_input"}
    level = next(b for b in modal["blocks"] if b.get("block_id") == "var:level")
    assert level["element"]["initial_option"]["value"] == '"junior"'  # the default, filled in

    await george.slack.submit_modal(ALEX, {
        "job_name": {"value": "onboard-carol"}, "var:name": {"value": "Carol Diaz"},
        "var:level": {"value": '"senior"'}, "var:laptops": {"value": "2"}, "var:team": {"value": "payments"},
    })
    await eventually(lambda: "onboard-carol" in remote.git("ls-tree", "-r", "--name-only", "main"),
                     what="the job committed")
    assert remote.git("log", "-1", "--format=%an <%ae>", "main") == "Alex Kim <alex@george-local.example>"
    written = YAML(typ="safe").load(remote.git("show", "main:manifests/jobs/onboard-carol.yaml"))
    params = {"name": "Carol Diaz", "level": "senior", "laptops": 2, "team": "payments"}
    assert written["spec"] == {"template": "onboard-employee", "params": params}
    told = await eventually(lambda: direct_messages(george, ALEX), what="Alex told")
    assert "onboard-carol" in told[-1] and "committed to `main` as you" in told[-1]  # George is not in #ops


async def test_what_validate_says_comes_back_in_the_form_and_nothing_is_committed(
    writing: George, remote: GitRepo
) -> None:
    george = writing
    head = remote.git("rev-parse", "main")
    await george.slack.slash(ALEX, OPS, "/george", "run onboard-employee")
    await george.until(lambda: george.slack.modal(ALEX))
    await george.slack.submit_modal(ALEX, {"job_name": {"value": "Bad Name"}, "var:name": {"value": "X"}})
    shown = await george.until(lambda: (george.slack.modal(ALEX) or {}).get("errors"))
    assert "lowercase letters" in shown["job_name"]

    await george.slack.submit_modal(ALEX, {"job_name": {"value": "onboard-dan"}, "var:name": {"value": "Dan"},
                                           "var:laptops": {"value": "7"}})
    shown = await george.until(lambda: (george.slack.modal(ALEX) or {}).get("errors", {}).get("var:laptops"))
    assert "3" in shown  # the variable's maximum, said under its input
    assert remote.git("rev-parse", "main") == head


async def test_cancel_commits_the_removal_and_an_unknown_template_is_named(
    writing: George, remote: GitRepo
) -> None:
    george = writing
    await george.slack.slash(ALEX, OPS, "/george", "run onboard-employe")
    told = await george.until(lambda: george.ephemeral_text(ALEX))
    assert "no template `onboard-employe`" in told and "`onboard-employee`" in told

    assert george.surface.listeners is not None and george.surface.listeners.writer is not None
    from georgebot.manifests.writing import Author

    george.surface.listeners.writer.start(name="onboard-eve", template="onboard-employee",
                                          params={"name": "Eve"}, author=Author("Sam", "sam@example.com"))
    await george.slack.slash(ALEX, OPS, "/george", "cancel onboard-eve")
    await eventually(lambda: "onboard-eve" not in remote.git("ls-tree", "-r", "--name-only", "main"),
                     what="the job's removal committed")
    assert remote.git("log", "-1", "--format=%an|%s", "main") == "Alex Kim|Cancel job onboard-eve"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no /usr/bin/chromium: apt-get install chromium")
async def test_in_the_page_the_form_has_a_menu_a_number_and_text_and_starts_the_job(
    writing: George, remote: GitRepo
) -> None:
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=15_000)
    george = writing
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{george.slack.url}/?as={ALEX}&channel={OPS}")
            await page.locator("#composer-text").fill("/george run onboard-employee")
            await page.locator("#composer-text").press("Enter")
            modal = page.get_by_test_id("modal")
            await expect(modal).to_be_visible()
            level = modal.locator('select[data-input-block="var:level"]')
            await expect(level).to_have_value('"junior"')  # the default, chosen
            laptops = modal.locator('input[type="number"][data-input-block="var:laptops"]')
            await expect(laptops).to_have_value("1")
            await modal.locator('[data-input-block="job_name"]').fill("onboard-hana")
            await modal.locator('[data-input-block="var:name"]').fill("Hana Sato")
            await level.select_option(label="senior")
            await modal.get_by_test_id("modal-submit").click()
            await expect(modal).to_be_hidden()
        finally:
            await browser.close()
    await eventually(lambda: "onboard-hana" in remote.git("ls-tree", "-r", "--name-only", "main"),
                     what="the job committed")
    written = YAML(typ="safe").load(remote.git("show", "main:manifests/jobs/onboard-hana.yaml"))
    assert written["spec"]["params"] == {"name": "Hana Sato", "level": "senior", "laptops": 1}


async def test_a_forged_submission_is_refused_in_the_form_and_commits_nothing(
    writing: George, remote: GitRepo
) -> None:
    listeners = writing.surface.listeners
    assert listeners is not None
    head = remote.git("rev-parse", "main")
    answers: list[dict[str, object]] = []

    async def ack(**answer: object) -> None:
        answers.append(answer)

    await listeners.on_start_submitted(ack, {"user": {"id": ALEX}},  # type: ignore[arg-type]
                                       {"private_metadata": "{not json", "state": {"values": {}}})
    forged = {"job_name": {"value": {"value": "onboard-zed"}}, "var:name": {"value": {"value": "Zed"}},
              "var:level": {"value": {"selected_option": {"value": "not json at all"}}}}
    await listeners.on_start_submitted(ack, {"user": {"id": ALEX}},  # type: ignore[arg-type]
                                       {"private_metadata": '{"template": "onboard-employee"}',
                                        "state": {"values": forged}})
    assert [a["response_action"] for a in answers] == ["errors", "errors"]
    assert "template is gone" in str(answers[0]["errors"])
    assert "var:level" in answers[1]["errors"]  # type: ignore[operator]  # validate names the bad level
    assert remote.git("rev-parse", "main") == head
