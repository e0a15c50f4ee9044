-- One-shot export of Hydra's finished build steps as NDJSON in buildfund's build-step record
-- format (interfaces.md, "Build steps"): the same rows, filtered and mapped the same way, as
-- `buildfund sync hydra` pulls (see jobs/src/hydra.rs).
--
--   psql -At -f docs/hydra-export.sql "$HYDRA_DATABASE_URL" > steps.ndjson
--   buildfund ingest build-steps steps.ndjson
--
-- Options (psql variables):
--   -v source=NAME   the build-step source to store the rows under (default: hydra, the default
--                    of `hydra.source`; keep them equal so a later pull updates the same rows)
--   -v since=UNIX    only steps that stopped at or after this time (unix seconds; default 0)
-- Add -X to skip a ~/.psqlrc that prints anything. A read-only role is enough.
--
-- What is exported: builds (type 0) that are finished (busy 0), ran on a machine, and have a
-- start and a later stop time. Skipped: substitutions (type 1, run by the queue runner), steps
-- still running, cached failures (status 8: no times, or start = stop), and steps that were
-- running when the queue runner restarted (Hydra stores them with a NULL stop time, so their
-- machine time is lost). The machine is Hydra's raw name (`ssh://nix@build04.nix-community.org`,
-- `ssh://localhost`); map it to a priced machine with that machine's `aliases`.
-- The ingest validates every record and stores nothing if one is bad (for instance a step longer
-- than 31 days); the pull skips such a row instead and names it.

\set ON_ERROR_STOP on
\set QUIET on
-- Stream the rows instead of holding the whole result in psql's memory.
\set FETCH_COUNT 10000
\if :{?source}
\else
\set source hydra
\endif
\if :{?since}
\else
\set since 0
\endif

SELECT json_build_object(
         'source',  (:'source')::text,
         'build',   s.build,
         'step',    s.stepnr,
         'project', j.project,
         'jobset',  j.name,
         'job',     b.job,
         'system',  s.system,
         'machine', s.machine,
         'start',   s.starttime,
         'stop',    s.stoptime,
         'status',  s.status)
FROM   buildsteps s
JOIN   builds b  ON b.id = s.build
JOIN   jobsets j ON j.id = b.jobset_id
WHERE  s.type = 0 AND s.busy = 0 AND s.machine <> ''
  AND  s.starttime IS NOT NULL AND s.stoptime IS NOT NULL
  AND  s.stoptime > s.starttime
  AND  (s.status IS NULL OR s.status <> 8)
  AND  s.stoptime >= (:'since')::bigint
ORDER  BY s.stoptime, s.build, s.stepnr;
