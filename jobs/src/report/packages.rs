//! "What the money built": the month's most expensive packages, from its cost per job.
//!
//! A package is a job name without its system suffix: the last dot-separated segment is a
//! system when it reads `<arch>-<os>`, `<arch>` a lower-case letter then lower-case letters,
//! digits or `_` (`x86_64`, `aarch64`, `i686`, `armv7l`, `riscv64`, `powerpc64le`), and
//! `<os>` one of [`SYSTEM_OSES`] (`x86_64-linux`, `aarch64-darwin`, `x86_64-freebsd`). So
//! `python3Packages.torch.x86_64-linux` and `python3Packages.torch.aarch64-linux` are the
//! package `python3Packages.torch`, while `hello`, `tests.nixos-26.05` or `~unnamed` are their
//! own package. Packages are grouped per pool (a package built for two pools is two rows, each
//! paid by its own pool's fund) and summed over the pool's jobsets.
use crate::books::jobs::JobCost;
use serde::Serialize;
use std::collections::BTreeMap;

/// The operating systems of Nix system doubles recognised as a job's suffix.
pub const SYSTEM_OSES: &[&str] = &[
    "linux", "darwin", "freebsd", "netbsd", "openbsd", "cygwin", "windows", "none", "wasi",
];

/// How many packages the pages and the email show.
pub const TOP_PACKAGES: usize = 10;

/// Whether `s` is a Nix system such as `x86_64-linux` (see the module's rule).
pub fn is_system(s: &str) -> bool {
    let Some((arch, os)) = s.split_once('-') else {
        return false;
    };
    let mut chars = arch.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && SYSTEM_OSES.contains(&os)
}

/// The package of a job: its name without a system suffix.
pub fn package_of(job: &str) -> &str {
    match job.rsplit_once('.') {
        Some((package, system)) if !package.is_empty() && is_system(system) => package,
        _ => job,
    }
}

/// One package of one pool in the month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageCost {
    pub package: String,
    pub pool: String,
    /// Its jobs (`python3Packages.torch.x86_64-linux`, …), ascending.
    pub jobs: Vec<String>,
    pub busy_seconds: i64,
    pub cost_cents: i64,
    /// Its share of the month's spending (every line, idle included) in tenths of a percent,
    /// exact and rounded down; `None` when nothing was spent.
    pub share_permille: Option<i64>,
    /// Its pool spent more than its monthly budget in the month.
    pub pool_over_budget: bool,
}

/// Every package of the month's jobs, by cost descending, then package and pool ascending;
/// `spent_cents` is the month's spending, `over_budget` the pools that spent more than their
/// budget.
pub fn packages(jobs: &[JobCost], spent_cents: i64, over_budget: &[&str]) -> Vec<PackageCost> {
    let mut by: BTreeMap<(&str, &str), PackageCost> = BTreeMap::new();
    for j in jobs {
        let package = package_of(&j.job);
        let p = by
            .entry((package, j.pool.as_str()))
            .or_insert_with(|| PackageCost {
                package: package.to_string(),
                pool: j.pool.clone(),
                jobs: Vec::new(),
                busy_seconds: 0,
                cost_cents: 0,
                share_permille: None,
                pool_over_budget: over_budget.contains(&j.pool.as_str()),
            });
        if !p.jobs.contains(&j.job) {
            p.jobs.push(j.job.clone());
        }
        p.busy_seconds += j.busy_seconds;
        p.cost_cents += j.cost_cents;
    }
    let mut out: Vec<PackageCost> = by.into_values().collect();
    for p in &mut out {
        p.jobs.sort();
        p.share_permille = (spent_cents > 0).then(|| {
            let permille = i128::from(p.cost_cents) * 1000 / i128::from(spent_cents);
            i64::try_from(permille).expect("a share of a sum fits")
        });
    }
    out.sort_by(|a, b| {
        b.cost_cents
            .cmp(&a.cost_cents)
            .then_with(|| a.package.cmp(&b.package))
            .then_with(|| a.pool.cmp(&b.pool))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_suffix_is_a_last_segment_arch_os() {
        for (job, package) in [
            (
                "python3Packages.torch.x86_64-linux",
                "python3Packages.torch",
            ),
            (
                "python3Packages.torch.aarch64-linux",
                "python3Packages.torch",
            ),
            ("blender.x86_64-darwin", "blender"),
            ("hello.armv7l-linux", "hello"),
            ("hello.powerpc64le-linux", "hello"),
            ("hello", "hello"),
            ("~unnamed", "~unnamed"),
            ("tests.nixos-26.05", "tests.nixos-26.05"),
            ("tests.x86_64-plan9", "tests.x86_64-plan9"),
            ("tests.X86_64-linux", "tests.X86_64-linux"),
            (".x86_64-linux", ".x86_64-linux"),
            ("x86_64-linux", "x86_64-linux"),
            ("a.b.x86_64-linux-gnu", "a.b.x86_64-linux-gnu"),
        ] {
            assert_eq!(package_of(job), package, "{job}");
        }
    }

    #[test]
    fn packages_group_systems_per_pool() {
        let j = |jobset: &str, job: &str, pool: &str, busy, cents| JobCost {
            jobset: jobset.into(),
            job: job.into(),
            pool: pool.into(),
            fund: pool.into(),
            busy_seconds: busy,
            steps: 1,
            cost_cents: cents,
        };
        let p = packages(
            &[
                j("nixpkgs:cuda", "torch.x86_64-linux", "cuda", 10, 300),
                j("nixpkgs:cuda-tests", "torch.x86_64-linux", "cuda", 5, 50),
                j("nixpkgs:cuda", "torch.aarch64-linux", "cuda", 10, 100),
                j("nixpkgs:trunk", "torch.x86_64-linux", "other", 1, 450),
                j("nixpkgs:trunk", "hello", "other", 1, 450),
            ],
            1800,
            &["other"],
        );
        let got: Vec<(&str, &str, i64, i64, usize)> = p
            .iter()
            .map(|p| {
                (
                    p.package.as_str(),
                    p.pool.as_str(),
                    p.busy_seconds,
                    p.cost_cents,
                    p.jobs.len(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("hello", "other", 1, 450, 1),
                ("torch", "cuda", 25, 450, 2),
                ("torch", "other", 1, 450, 1),
            ]
        );
        assert_eq!(p[1].jobs, ["torch.aarch64-linux", "torch.x86_64-linux"]);
        // 450 of 1,800 is 25.0 %; only the pool over its budget is marked.
        assert_eq!(p[1].share_permille, Some(250));
        let marked: Vec<bool> = p.iter().map(|p| p.pool_over_budget).collect();
        assert_eq!(marked, [true, false, true]);
        assert_eq!(
            packages(&[j("a:b", "x", "cuda", 1, 0)], 0, &[])[0].share_permille,
            None
        );
    }
}
