//! The month's cost lines as a FOCUS 1.0 dataset (the FinOps Open Cost and Usage
//! Specification, <https://focus.finops.org>): `GET /api/v1/costs/focus` and
//! `buildfund export focus`. One row per line of `GET /api/v1/costs` (machine × jobset, and
//! each machine's idle line), in its order, so the rows' `BilledCost` sum exactly to its
//! `total_cents`. The mapping of every column is the table in docs/src/http-api.md ("FOCUS export").
//!
//! Each row is one allocation of a machine's cost: `PricingQuantity` 1 and the line's cost as
//! its unit price, so `ListUnitPrice × PricingQuantity = ListCost` holds exactly (the price of
//! a busy hour is a fraction of a cent that rounding to whole cents per line does not keep).
use super::csv::text_cell;
use crate::books::attribution::{Line, IDLE_KEY};
use crate::books::costs::{clip, month_costs};
use crate::calendar::{from_unix, rfc3339, Month};
use crate::config::Config;
use crate::money::format_cents;
use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::json;

/// The FOCUS 1.0 columns of the export (every column the specification defines, in
/// alphabetical order), then buildfund's own, `x_`-prefixed as the specification requires, then
/// [`VALIDATOR_ALIASES`].
pub const FOCUS_COLUMNS: &[&str] = &[
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
    "x_Pool",
    "x_Fund",
    "x_BusySeconds",
    "InvoiceIssuer",
    "Provider",
    "Publisher",
    "ResourceID",
    "ChargeType",
];

/// Columns the FinOps Foundation's `focus-validator` 1.0.0 requires under other names than
/// the FOCUS 1.0 specification's (its 1.0 rule set checks `InvoiceIssuer`, `Provider`,
/// `Publisher` and `ResourceID`, and its `SkuPriceId_Nullable` rule reads FOCUS 0.5's
/// `ChargeType`): the export carries them too, as copies of `InvoiceIssuerName`,
/// `ProviderName`, `PublisherName`, `ResourceId` and `ChargeCategory`, so that the validator
/// passes on the export as it is and every FOCUS 1.0 column keeps its specified name.
pub const VALIDATOR_ALIASES: &[(&str, &str)] = &[
    ("InvoiceIssuer", "InvoiceIssuerName"),
    ("Provider", "ProviderName"),
    ("Publisher", "PublisherName"),
    ("ResourceID", "ResourceId"),
    ("ChargeType", "ChargeCategory"),
];

/// `ProviderName`, `PublisherName` and `InvoiceIssuerName`: the books that allocate the
/// machines' cost are buildfund's; the machines' own hosters are not known to it.
pub const FOCUS_PROVIDER: &str = "buildfund";
/// `ServiceName` of an idle line.
pub const FOCUS_IDLE_SERVICE: &str = "idle";
/// `PricingUnit`: each row is one allocation of a machine's cost.
pub const FOCUS_PRICING_UNIT: &str = "Allocations";

/// The month's FOCUS export as of `at` (the month to date while it runs): the lines of
/// `GET /api/v1/costs?month=…&at=…` as CSV with a header row of [`FOCUS_COLUMNS`].
pub async fn month_focus_csv(
    db: &impl ConnectionTrait,
    config: &Config,
    month: Month,
    at: crate::bounds::At,
) -> Result<Vec<u8>, super::ReportError> {
    let at = at.instant();
    let period = crate::calendar::Period::new(month, at, config.ledger_start);
    let costs = month_costs(db, config, &period).await?;
    Ok(focus_csv(config, month, at, &costs.lines)?)
}

/// `lines` (the month's, as of `at`) as FOCUS 1.0 rows. The billing period is the calendar
/// month; the charge period is the part of it the lines cover: the month clipped to
/// `[ledger_start, at)`. Null is an empty cell; amounts are exact decimals of the cents.
pub fn focus_csv(
    config: &Config,
    month: Month,
    at: DateTime<Utc>,
    lines: &[Line],
) -> Result<Vec<u8>, ::csv::Error> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record(FOCUS_COLUMNS)?;
    let billing_start = rfc3339(month.start());
    let billing_end = rfc3339(month.next().start());
    let charge = clip(config, month.span(), at);
    let (charge_start, charge_end) = match charge {
        Some(span) => (rfc3339(from_unix(span.start)), rfc3339(from_unix(span.end))),
        // No window, no lines: the header alone is written.
        None => (billing_start.clone(), billing_start.clone()),
    };
    let account = config.public_url.trim_end_matches('/');
    for l in lines {
        let cost = format_cents(l.cost_cents);
        let busy = l.busy_seconds.to_string();
        // A Decimal column written with its point, so that tools inferring types from the
        // text (pandas, spreadsheets) read it as a decimal, not an integer.
        let busy_decimal = format!("{busy}.0");
        let fund_name = config
            .funds
            .iter()
            .find(|f| f.slug == l.fund)
            .map_or("", |f| f.name.as_str());
        let (service, description, frequency) = match &l.jobset {
            Some(jobset) => (
                jobset.as_str(),
                format!(
                    "Build machine {}: the share of jobset {jobset} in its cost ({} busy seconds)",
                    l.machine, l.busy_seconds
                ),
                "Usage-Based",
            ),
            None => (
                FOCUS_IDLE_SERVICE,
                format!(
                    "Build machine {}: its idle time, paid by fund {}",
                    l.machine, l.fund
                ),
                "Recurring",
            ),
        };
        // In key order, so the text is the same whether or not serde_json keeps insertion order.
        let tags = json!({"fund": l.fund, "jobset": l.jobset, "pool": l.pool}).to_string();
        let sku_price = format!(
            "{month}/{}/{}",
            l.machine,
            l.jobset.as_deref().unwrap_or(IDLE_KEY)
        );
        w.write_record([
            "",                              // AvailabilityZone
            &cost,                           // BilledCost
            &text_cell(account),             // BillingAccountId
            "",                              // BillingAccountName
            &config.currency,                // BillingCurrency
            &billing_end,                    // BillingPeriodEnd
            &billing_start,                  // BillingPeriodStart
            "Usage",                         // ChargeCategory
            "",                              // ChargeClass
            &text_cell(&description),        // ChargeDescription
            frequency,                       // ChargeFrequency
            &charge_end,                     // ChargePeriodEnd
            &charge_start,                   // ChargePeriodStart
            "",                              // CommitmentDiscountCategory
            "",                              // CommitmentDiscountId
            "",                              // CommitmentDiscountName
            "",                              // CommitmentDiscountStatus
            "",                              // CommitmentDiscountType
            &busy_decimal,                   // ConsumedQuantity
            "Seconds",                       // ConsumedUnit
            &cost,                           // ContractedCost
            &cost,                           // ContractedUnitPrice
            &cost,                           // EffectiveCost
            FOCUS_PROVIDER,                  // InvoiceIssuerName
            &cost,                           // ListCost
            &cost,                           // ListUnitPrice
            "Standard",                      // PricingCategory
            "1.0",                           // PricingQuantity
            FOCUS_PRICING_UNIT,              // PricingUnit
            FOCUS_PROVIDER,                  // ProviderName
            FOCUS_PROVIDER,                  // PublisherName
            "",                              // RegionId
            "",                              // RegionName
            &text_cell(&l.machine),          // ResourceId
            &text_cell(&l.machine),          // ResourceName
            "Build machine",                 // ResourceType
            "Compute",                       // ServiceCategory
            &text_cell(service),             // ServiceName
            &text_cell(&l.machine),          // SkuId
            &text_cell(&sku_price),          // SkuPriceId
            &l.fund,                         // SubAccountId
            &text_cell(fund_name),           // SubAccountName
            &tags,                           // Tags
            l.pool.as_deref().unwrap_or(""), // x_Pool
            &l.fund,                         // x_Fund
            &busy,                           // x_BusySeconds
            FOCUS_PROVIDER,                  // InvoiceIssuer (= InvoiceIssuerName)
            FOCUS_PROVIDER,                  // Provider (= ProviderName)
            FOCUS_PROVIDER,                  // Publisher (= PublisherName)
            &text_cell(&l.machine),          // ResourceID (= ResourceId)
            "Usage",                         // ChargeType (= ChargeCategory)
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::parse(
            r#"
currency = "EUR"
ledger_start = "2026-10-10"
public_url = "https://fund.example.org/"

[[funds]]
slug = "general"
name = "General fund"
default = true

[[funds]]
slug = "cuda"
name = "CUDA builds"
"#,
            "test.toml",
        )
        .expect("valid config")
    }

    fn line(jobset: Option<&str>, fund: &str, busy: i64, cents: i64) -> Line {
        Line {
            machine: "build03".into(),
            jobset: jobset.map(str::to_string),
            pool: jobset.map(|_| "cuda".to_string()),
            fund: fund.into(),
            idle: jobset.is_none(),
            busy_seconds: busy,
            cost_cents: cents,
        }
    }

    fn rows(csv: &[u8]) -> Vec<std::collections::HashMap<String, String>> {
        let mut r = ::csv::Reader::from_reader(csv);
        let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
        assert_eq!(header, FOCUS_COLUMNS);
        r.records()
            .map(|rec| {
                let rec = rec.unwrap();
                header
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(str::to_string))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_row_per_line_with_exact_amounts_and_the_charge_period_clipped() {
        let month = Month::parse("2026-10").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-10-20T12:00:00Z")
            .unwrap()
            .to_utc();
        let lines = [
            line(Some("nixpkgs:cuda"), "cuda", 86400, 12345),
            line(None, "general", 0, 5),
        ];
        let out = focus_csv(&config(), month, at, &lines).unwrap();
        let rows = rows(&out);
        assert_eq!(rows.len(), 2);
        let (job, idle) = (&rows[0], &rows[1]);
        for row in &rows {
            for (alias, column) in VALIDATOR_ALIASES {
                assert_eq!(row[*alias], row[*column], "{alias} copies {column}");
            }
        }
        for col in [
            "BilledCost",
            "EffectiveCost",
            "ListCost",
            "ContractedCost",
            "ListUnitPrice",
        ] {
            assert_eq!(job[col], "123.45", "{col}");
            assert_eq!(idle[col], "0.05", "{col}");
        }
        assert_eq!(job["BillingPeriodStart"], "2026-10-01T00:00:00Z");
        assert_eq!(job["BillingPeriodEnd"], "2026-11-01T00:00:00Z");
        // ledger_start and at clip the charge period.
        assert_eq!(job["ChargePeriodStart"], "2026-10-10T00:00:00Z");
        assert_eq!(job["ChargePeriodEnd"], "2026-10-20T12:00:00Z");
        assert_eq!(job["BillingAccountId"], "https://fund.example.org");
        assert_eq!(job["ServiceName"], "nixpkgs:cuda");
        assert_eq!(idle["ServiceName"], "idle");
        assert_eq!(job["SubAccountId"], "cuda");
        assert_eq!(job["SubAccountName"], "CUDA builds");
        assert_eq!(idle["SubAccountName"], "General fund");
        assert_eq!(job["ResourceId"], "build03");
        assert_eq!(job["ConsumedQuantity"], "86400.0");
        assert_eq!(job["PricingQuantity"], "1.0");
        assert_eq!(job["x_BusySeconds"], "86400");
        assert_eq!(job["x_Pool"], "cuda");
        assert_eq!(idle["x_Pool"], "");
        assert_eq!(job["ChargeClass"], "");
        assert_eq!(job["ChargeFrequency"], "Usage-Based");
        assert_eq!(idle["ChargeFrequency"], "Recurring");
        assert_eq!(job["SkuPriceId"], "2026-10/build03/nixpkgs:cuda");
        assert_eq!(idle["SkuPriceId"], "2026-10/build03/~idle");
        let tags: serde_json::Value = serde_json::from_str(&idle["Tags"]).unwrap();
        assert_eq!(
            tags,
            json!({"pool": null, "fund": "general", "jobset": null})
        );
        let tags: serde_json::Value = serde_json::from_str(&job["Tags"]).unwrap();
        assert_eq!(
            tags,
            json!({"pool": "cuda", "fund": "cuda", "jobset": "nixpkgs:cuda"})
        );
    }

    #[test]
    fn no_lines_is_the_header_alone() {
        let month = Month::parse("2026-09").unwrap();
        let at = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let out = focus_csv(&config(), month, at, &[]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{}\n", FOCUS_COLUMNS.join(","))
        );
    }
}
