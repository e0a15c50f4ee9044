//! Tests of `jobs`: the split of a line among its jobs.
use super::*;
use proptest::prelude::*;

fn busy(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn line(jobset: &str, cents: i64, busy_seconds: i64) -> Line {
    Line {
        machine: "build03".into(),
        jobset: Some(jobset.into()),
        pool: Some("cuda".into()),
        fund: "cuda".into(),
        idle: false,
        busy_seconds,
        cost_cents: cents,
    }
}

#[test]
fn two_jobs_tied_on_their_remainders_ascending_name_wins() {
    // 11 cents over 2 + 2 + 1 seconds: 4.4, 4.4 and 2.2 cents; the floors give 10, and the
    // cent left goes to the larger remainder, a tie of .4 between torch and jaxlib that the
    // name decides: "python3Packages.jaxlib…" < "python3Packages.torch…".
    let shares = split_line(
        11,
        &busy(&[
            ("python3Packages.torch.x86_64-linux", 2),
            ("python3Packages.jaxlib.x86_64-linux", 2),
            ("blender.x86_64-linux", 1),
        ]),
    )
    .unwrap();
    assert_eq!(
        shares,
        busy(&[
            ("blender.x86_64-linux", 2),
            ("python3Packages.jaxlib.x86_64-linux", 5),
            ("python3Packages.torch.x86_64-linux", 4),
        ])
    );
}

#[test]
fn the_largest_remainder_beats_the_name() {
    // 7 cents over 3 + 3 + 4 seconds: 2.1, 2.1 and 2.8; the cent left goes to the .8.
    assert_eq!(
        split_line(7, &busy(&[("a", 3), ("b", 3), ("c", 4)])).unwrap(),
        busy(&[("a", 2), ("b", 2), ("c", 3)])
    );
    // Three-way tie: 10 cents over three equal jobs, the first name gets the cent.
    assert_eq!(
        split_line(10, &busy(&[("z", 1), ("m", 1), ("a", 1)])).unwrap(),
        busy(&[("a", 4), ("m", 3), ("z", 3)])
    );
    // A zero-cent line gives every job 0; no busy seconds, nothing to split among.
    assert_eq!(
        split_line(0, &busy(&[("a", 5)])).unwrap(),
        busy(&[("a", 0)])
    );
    assert!(split_line(0, &BTreeMap::new()).unwrap().is_empty());
}

#[test]
fn a_part_splits_each_jobset_line_and_leaves_idle_alone() {
    let lines = vec![
        line("nixpkgs:cuda", 11, 5),
        line("nixpkgs:trunk", 3, 2),
        Line {
            machine: "build03".into(),
            jobset: None,
            pool: None,
            fund: "general".into(),
            idle: true,
            busy_seconds: 0,
            cost_cents: 40,
        },
    ];
    let b = |s, n| JobBusy {
        busy_seconds: s,
        steps: n,
    };
    let key = |j: &str, k: &str| (j.to_string(), k.to_string());
    let busy: BTreeMap<JobKey, JobBusy> = [
        (key("nixpkgs:cuda", "torch"), b(2, 1)),
        (key("nixpkgs:cuda", "jaxlib"), b(2, 3)),
        (key("nixpkgs:cuda", UNNAMED_JOB), b(1, 1)),
        (key("nixpkgs:trunk", "hello"), b(2, 2)),
    ]
    .into_iter()
    .collect();
    let mut one = JobsByJobset::new();
    add_part_jobs(&mut one, &lines, busy.clone()).unwrap();
    let jobs = by_key(one);
    let got: Vec<(&str, &str, i64, i64)> = jobs
        .values()
        .map(|j| (j.jobset.as_str(), j.job.as_str(), j.steps, j.cost_cents))
        .collect();
    assert_eq!(
        got,
        vec![
            ("nixpkgs:cuda", "jaxlib", 3, 5),
            ("nixpkgs:cuda", "torch", 1, 4),
            ("nixpkgs:cuda", UNNAMED_JOB, 1, 2),
            ("nixpkgs:trunk", "hello", 2, 3),
        ]
    );
    // Two parts add up per (jobset, job).
    let mut sums = JobsByJobset::new();
    add_part_jobs(&mut sums, &lines, busy.clone()).unwrap();
    add_part_jobs(&mut sums, &lines, busy).unwrap();
    let total = by_key(sums);
    let torch = &total[&key("nixpkgs:cuda", "torch")];
    assert_eq!(
        (torch.busy_seconds, torch.steps, torch.cost_cents),
        (4, 2, 8)
    );
}

#[test]
fn the_query_is_one_grouped_statement_on_both_backends() {
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
    let q = jobs_query(Span::new(100, 200), &["build03", "b3"], Some(150), None, 60);
    for sql in [
        q.to_string(PostgresQueryBuilder),
        q.to_string(SqliteQueryBuilder),
    ] {
        assert!(sql.contains("GROUP BY"), "{sql}");
        assert!(sql.contains("\"job\""), "{sql}");
        assert!(sql.contains("IN ('build03', 'b3')"), "{sql}");
        assert!(sql.contains(">= 150"), "{sql}");
        assert!(sql.contains(r#""start_ts" >= 40"#), "{sql}");
    }
}

fn names() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "python3Packages.torch.x86_64-linux",
        "python3Packages.torch.aarch64-linux",
        "jaxlib.x86_64-linux",
        "tensorflow.x86_64-linux",
        "blender.x86_64-linux",
        "hello",
        UNNAMED_JOB,
    ])
    .prop_map(String::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_jobs_of_a_line_sum_to_it_and_none_is_negative(
        cents in 0i64..10_000_000,
        jobs in prop::collection::btree_map(names(), 0i64..3_000_000, 1..7),
    ) {
        let shares = split_line(cents, &jobs).unwrap();
        let total: i64 = jobs.values().sum();
        if total == 0 {
            prop_assert!(shares.is_empty());
        } else {
            prop_assert_eq!(shares.values().sum::<i64>(), cents);
            prop_assert_eq!(shares.len(), jobs.len());
            for (job, &c) in &shares {
                prop_assert!(c >= 0);
                // Within a cent of the exact share.
                let exact = i128::from(cents) * i128::from(jobs[job]);
                let t = i128::from(total);
                prop_assert!(i128::from(c) * t <= exact + t && exact <= (i128::from(c) + 1) * t);
            }
        }
    }

    #[test]
    fn the_split_without_names_is_the_split_by_names(
        cents in 0i64..10_000_000,
        jobs in prop::collection::btree_map(names(), 0i64..3_000_000, 1..7),
        ties in 0u8..2,
    ) {
        // Equal busy seconds make ties among the remainders (broken by ascending name).
        let jobs: BTreeMap<String, i64> = jobs
            .into_iter()
            .map(|(j, s)| (j, if ties == 1 { s % 3 } else { s }))
            .collect();
        let by_name = split_line(cents, &jobs).unwrap();
        let seconds: Vec<i64> = jobs.values().copied().collect();
        let cents_only = split_cents(cents, &seconds).unwrap();
        prop_assert_eq!(by_name.values().copied().collect::<Vec<_>>(), cents_only);
    }

    #[test]
    fn the_split_does_not_depend_on_the_order_of_steps(
        cents in 0i64..1_000_000,
        steps in prop::collection::vec((names(), 1i64..100_000), 1..20),
        perm in Just((0..20usize).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        // The same steps, summed per job in two orders, give the same busy map and shares.
        let sum = |order: &mut dyn Iterator<Item = usize>| {
            let mut m: BTreeMap<String, i64> = BTreeMap::new();
            for i in order {
                let (job, s) = &steps[i];
                *m.entry(job.clone()).or_insert(0) += s;
            }
            m
        };
        let forward = sum(&mut (0..steps.len()));
        let shuffled = sum(&mut perm.iter().copied().filter(|&i| i < steps.len()));
        prop_assert_eq!(&forward, &shuffled);
        prop_assert_eq!(split_line(cents, &forward).unwrap(), split_line(cents, &shuffled).unwrap());
    }
}
