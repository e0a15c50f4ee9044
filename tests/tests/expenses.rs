//! Expenses (money out) end to end: the store (idempotent by key, months marked stale in the
//! write's transaction), the OpenCollective sync of expenses and reversals with the check of
//! OpenCollective's own balance, and manual expenses through `POST /api/v1/expenses`.
use buildfund_entity::book_stale;
use buildfund_jobs::books::expenses::{self, ExpenseError, ExpenseKind, ExpenseRecord};
use buildfund_tests::db_test;
use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn record(id: &str, paid_at: &str, amount: i64, fees: i64) -> ExpenseRecord {
    ExpenseRecord {
        source: "opencollective".into(),
        external_id: id.into(),
        kind: ExpenseKind::Expense,
        paid_at: t(paid_at),
        account_slug: "nixfund".into(),
        payee: Some("Hetzner".into()),
        tags: vec!["Hosting".into(), "build01".into()],
        description: Some("Invoice".into()),
        incurred_at: t("2026-09-30T00:00:00Z"),
        amount_cents: amount,
        fees_cents: fees,
        original_amount: buildfund_jobs::money::format_cents(amount),
        original_currency: "EUR".into(),
        expense_ref: Some(format!("e-{id}")),
        reversal_of: None,
    }
}

/// Generation of each marked month, oldest first.
async fn marks(app: &buildfund_tests::TestApp) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> = book_stale::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.month, m.generation))
        .collect();
    rows.sort();
    rows
}

db_test!(
    the_store_is_idempotent_and_marks_the_months_it_touches,
    |app| async move {
        let now = t("2026-12-06T12:00:00Z");
        let a = record("a", "2026-10-05T10:00:00Z", 12000, 150);
        let b = record("b", "2026-11-02T09:00:00Z", 5000, 0);
        let c = record("c", "2026-10-05T10:00:00Z", 300, 25);
        let stored = expenses::upsert(&app.db, &[b.clone(), a.clone(), c.clone()], now)
            .await
            .unwrap();
        assert_eq!(
            (stored.inserted, stored.updated, stored.unchanged),
            (3, 0, 0)
        );
        // November is 30 days long, so a write in October reopens October only.
        let first = marks(&app).await;
        assert_eq!(
            first,
            [("2026-10".to_string(), 1), ("2026-11".to_string(), 1)]
        );
        // The same records again: nothing written, nothing reopened.
        let again = expenses::upsert(&app.db, &[a.clone(), b.clone(), c.clone()], now)
            .await
            .unwrap();
        assert_eq!((again.inserted, again.updated, again.unchanged), (0, 0, 3));
        assert_eq!(marks(&app).await, first);
        // Moving b into October reopens both months (before and after).
        let mut moved = b.clone();
        moved.paid_at = t("2026-10-31T23:59:59Z");
        moved.tags = vec!["hosting".into()];
        let changed = expenses::upsert(&app.db, &[moved.clone()], now)
            .await
            .unwrap();
        assert_eq!((changed.inserted, changed.updated), (0, 1));
        assert_eq!(
            marks(&app).await,
            [("2026-10".to_string(), 2), ("2026-11".to_string(), 2)]
        );
        // Read back in [from, to), ordered by paid_at, source, external id.
        let october = expenses::paid_in(
            &app.db,
            t("2026-10-01T00:00:00Z"),
            t("2026-11-01T00:00:00Z"),
        )
        .await
        .unwrap();
        assert_eq!(october, [a.clone(), c.clone(), moved.clone()]);
        assert_eq!(october[0].total_cents(), 12150);
        let end_excluded = expenses::paid_in(
            &app.db,
            t("2026-10-01T00:00:00Z"),
            t("2026-10-31T23:59:59Z"),
        )
        .await
        .unwrap();
        assert_eq!(end_excluded, [a.clone(), c.clone()]);
        // A record beyond the bound refuses its whole batch: nothing of it is written.
        let huge = record("huge", "2026-11-03T00:00:00Z", 1_000_000_000_001, 0);
        let fresh = record("fresh", "2026-11-03T00:00:00Z", 100, 0);
        let err = expenses::upsert(&app.db, &[fresh, huge], now)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ExpenseError::Refused { external_id, .. } if external_id == "huge"),
            "{err}"
        );
        assert!(expenses::find(&app.db, "opencollective", "fresh")
            .await
            .unwrap()
            .is_none());
    }
);
