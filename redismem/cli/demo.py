"""``redismem demo``: the whole idea in one command, on the embedded mode."""

from __future__ import annotations

import click

from redismem.cli.app import Context, errors_as_exit_codes, main
from redismem.connection import MEMORY_URL, connect
from redismem.demo import run_demo


@main.command()
@click.pass_context
def demo(click_ctx: click.Context) -> None:
    """Write, update and delete records and print the events they publish.

    Runs on the embedded mode (memory://, no Redis server needed) unless
    --url or REDISMEM_URL names a server.
    """
    ctx = click_ctx.find_object(Context)
    assert ctx is not None
    source = click_ctx.parent.get_parameter_source("url") if click_ctx.parent else None
    url = ctx.url if source in _EXPLICIT else MEMORY_URL

    where = (
        "embedded mode (memory://), no Redis server needed"
        if url == MEMORY_URL
        else url
    )
    click.echo(f"redismem demo on {where}")
    with errors_as_exit_codes():
        run_demo(connect(url), click.echo)


_EXPLICIT = {
    click.core.ParameterSource.COMMANDLINE,
    click.core.ParameterSource.ENVIRONMENT,
}
