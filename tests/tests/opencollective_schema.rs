//! Schema conformance: buildfund's own OpenCollective schema (`jobs/graphql/opencollective.schema.graphql`)
//! is a subset of the real API v2 schema vendored in `tests/fixtures/opencollective/` (its
//! README says where it comes from), and every query in `jobs/graphql/` validates against the
//! real schema.
use apollo_compiler::schema::{ExtendedType, Schema};
use apollo_compiler::validation::Valid;
use apollo_compiler::ExecutableDocument;
use std::path::{Path, PathBuf};

/// `jobs/`, where the queries and our schema file live.
fn jobs_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../jobs"))
}

fn real_schema_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/opencollective/schemaV2.graphql"
    ))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}. The schema-conformance test needs OpenCollective's real schema, \
             vendored at tests/fixtures/opencollective/schemaV2.graphql; it never skips.",
            path.display()
        )
    })
}

fn real_schema() -> Valid<Schema> {
    let path = real_schema_path();
    Schema::parse_and_validate(read(&path), &path)
        .unwrap_or_else(|e| panic!("the real schema does not validate: {}", e.errors))
}

fn own_schema() -> Valid<Schema> {
    let path = jobs_dir().join("graphql/opencollective.schema.graphql");
    Schema::parse_and_validate(read(&path), &path)
        .unwrap_or_else(|e| panic!("our schema does not validate: {}", e.errors))
}

fn query_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(jobs_dir().join("graphql"))
        .expect("jobs/graphql")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "graphql")
                && !p.to_string_lossy().ends_with(".schema.graphql")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no query files in jobs/graphql");
    files
}

#[test]
fn the_real_schema_is_the_documented_one() {
    // The fixture's README: 31,581 lines, root types by convention.
    let text = read(&real_schema_path());
    assert!(
        text.lines().count() > 30_000,
        "schemaV2.graphql looks truncated"
    );
    let schema = real_schema();
    assert!(schema.types.contains_key("Transaction"));
}

#[test]
fn every_query_validates_against_the_real_schema() {
    let real = real_schema();
    let own = own_schema();
    for file in query_files() {
        let text = read(&file);
        if let Err(e) = ExecutableDocument::parse_and_validate(&real, &text, &file) {
            panic!(
                "{} does not validate against the real schema:\n{}",
                file.display(),
                e.errors
            );
        }
        if let Err(e) = ExecutableDocument::parse_and_validate(&own, &text, &file) {
            panic!(
                "{} does not validate against our schema file:\n{}",
                file.display(),
                e.errors
            );
        }
    }
}

#[test]
fn a_wrong_query_is_refused() {
    // The control: the validation does find errors.
    let real = real_schema();
    let bad = "query Q { transactions(kind: [DONATION], nope: 1) { nodes { id nosuchfield } } }";
    let errors = ExecutableDocument::parse_and_validate(&real, bad, "bad.graphql")
        .expect_err("an invalid query must be refused")
        .errors;
    assert!(errors.len() >= 3, "{errors}");
}

/// Every type, field, argument, enum value and interface of our schema file exists in the real
/// schema with the same type.
#[test]
fn our_schema_is_a_subset_of_the_real_one() {
    let real = real_schema();
    let own = own_schema();
    let mut problems = Vec::new();
    for (name, ty) in &own.types {
        if ty.is_built_in() {
            continue;
        }
        let Some(real_ty) = real.types.get(name) else {
            problems.push(format!("type {name} is not in the real schema"));
            continue;
        };
        match (ty, real_ty) {
            (ExtendedType::Scalar(_), ExtendedType::Scalar(_)) => {}
            (ExtendedType::Enum(a), ExtendedType::Enum(b)) => {
                for v in a.values.keys() {
                    if !b.values.contains_key(v) {
                        problems.push(format!("{name}.{v} is not a value of the real enum"));
                    }
                }
            }
            (ExtendedType::InputObject(a), ExtendedType::InputObject(b)) => {
                for (f, def) in &a.fields {
                    match b.fields.get(f) {
                        Some(r) if r.ty == def.ty => {}
                        Some(r) => problems.push(format!(
                            "{name}.{f}: {} here, {} in the real schema",
                            def.ty, r.ty
                        )),
                        None => problems.push(format!("{name}.{f} is not in the real schema")),
                    }
                }
            }
            (ExtendedType::Object(_), ExtendedType::Object(_))
            | (ExtendedType::Interface(_), ExtendedType::Interface(_)) => {
                let (fields, implements) = match ty {
                    ExtendedType::Object(o) => (&o.fields, &o.implements_interfaces),
                    ExtendedType::Interface(i) => (&i.fields, &i.implements_interfaces),
                    _ => unreachable!(),
                };
                let (real_fields, real_implements) = match real_ty {
                    ExtendedType::Object(o) => (&o.fields, &o.implements_interfaces),
                    ExtendedType::Interface(i) => (&i.fields, &i.implements_interfaces),
                    _ => unreachable!(),
                };
                for i in implements {
                    if !real_implements.contains(i) {
                        problems.push(format!("{name} does not implement {i} in the real schema"));
                    }
                }
                for (f, def) in fields {
                    let Some(r) = real_fields.get(f) else {
                        problems.push(format!("{name}.{f} is not in the real schema"));
                        continue;
                    };
                    if r.ty != def.ty {
                        problems.push(format!(
                            "{name}.{f}: {} here, {} in the real schema",
                            def.ty, r.ty
                        ));
                    }
                    for arg in &def.arguments {
                        match r.arguments.iter().find(|a| a.name == arg.name) {
                            Some(ra) if ra.ty == arg.ty => {}
                            Some(ra) => problems.push(format!(
                                "{name}.{f}({}): {} here, {} in the real schema",
                                arg.name, arg.ty, ra.ty
                            )),
                            None => problems.push(format!(
                                "{name}.{f}({}) is not an argument in the real schema",
                                arg.name
                            )),
                        }
                    }
                }
            }
            _ => problems.push(format!("{name} is another kind of type in the real schema")),
        }
    }
    assert!(
        problems.is_empty(),
        "our schema file differs from the real one:\n  {}",
        problems.join("\n  ")
    );
}
