"""maskstream past one machine: sources spread over a Ray cluster (`maskstream run CONFIG --ray ADDRESS`).

`assignment` (which worker runs which source), `worker` (the actor running today's pipeline for its sources),
`controller` (placement, failure handling, state in Redis), `driver` (the CLI entry). Ray is imported only by
`controller` and `driver`, and only under `--ray`; docs/CLUSTER.md has the design and the commands.
"""
