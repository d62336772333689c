use super::*;

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

/// An instant written with its offset, such as `2026-11-25T02:00-08:00`.
fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn daily(hour: u8, minute: u8) -> Cadence {
    Cadence::Daily { hour, minute }
}

fn monthly(day: u8, hour: u8, minute: u8) -> Cadence {
    Cadence::Monthly { day, hour, minute }
}

/// An hourly trigger firing at `minute` past every hour from `start` for `hours` hours, recording
/// each run it makes; returns the runs.
fn simulate(
    cadence: Cadence,
    tz: &TimeZone,
    start: Timestamp,
    hours: i64,
    mut last: Option<Timestamp>,
) -> Vec<Timestamp> {
    let mut runs = Vec::new();
    for hour in 0..hours {
        let now = start
            .checked_add(jiff::SignedDuration::from_hours(hour))
            .unwrap();
        if is_due(cadence, tz, now, last).is_due() {
            runs.push(now);
            last = Some(now);
        }
    }
    runs
}

// ---- the grammar ----

#[test]
fn parses_the_accepted_forms() {
    assert_eq!(parse("daily at 02:00"), Ok(daily(2, 0)));
    assert_eq!(parse("daily at 2:05"), Ok(daily(2, 5)));
    assert_eq!(parse("daily at 00:00"), Ok(daily(0, 0)));
    assert_eq!(parse("daily at 23:59"), Ok(daily(23, 59)));
    assert_eq!(parse("monthly on day 1 at 06:00"), Ok(monthly(1, 6, 0)));
    assert_eq!(parse("monthly on day 07 at 6:30"), Ok(monthly(7, 6, 30)));
    assert_eq!(parse("monthly on day 31 at 06:00"), Ok(monthly(31, 6, 0)));
    assert_eq!(parse("on-merge"), Ok(Cadence::OnMerge));
    assert_eq!(parse_for(RunKind::Sync, "on-merge"), Ok(Cadence::OnMerge));
    assert_eq!(
        parse_for(RunKind::Refresh, "daily at 02:00"),
        Ok(daily(2, 0))
    );
}

#[test]
fn display_is_canonical_and_parses_back() {
    for (text, canonical) in [
        ("daily at 2:05", "daily at 02:05"),
        ("monthly on day 07 at 6:30", "monthly on day 7 at 06:30"),
        ("on-merge", "on-merge"),
    ] {
        let cadence = parse(text).unwrap();
        assert_eq!(cadence.to_string(), canonical);
        assert_eq!(parse(canonical), Ok(cadence));
    }
}

#[test]
fn rejects_other_forms_with_exact_messages() {
    let forms = "accepted forms: `daily at HH:MM`, `monthly on day D at HH:MM` (D from 1 to 31, \
                 HH:MM on a 24-hour clock), and `on-merge` (sync only)";
    let cases = [
        (
            "weekly on monday at 02:00",
            format!("schedule `weekly on monday at 02:00` is not understood; {forms}"),
        ),
        (
            "Daily at 02:00",
            format!("schedule `Daily at 02:00` is not understood; {forms}"),
        ),
        ("", format!("schedule `` is not understood; {forms}")),
        (
            "monthly on day 31",
            format!("schedule `monthly on day 31` is not understood; {forms}"),
        ),
        (
            "daily  at 02:00",
            format!("schedule `daily  at 02:00` is not understood; {forms}"),
        ),
        (
            "on merge",
            format!("schedule `on merge` is not understood; {forms}"),
        ),
        (
            "daily at 24:00",
            format!(
                "schedule `daily at 24:00`: `24:00` is not a time of day (HH:MM, hours 0 to 23, \
                 minutes 00 to 59); {forms}"
            ),
        ),
        (
            "daily at 02:60",
            format!(
                "schedule `daily at 02:60`: `02:60` is not a time of day (HH:MM, hours 0 to 23, \
                 minutes 00 to 59); {forms}"
            ),
        ),
        (
            "daily at 2:5",
            format!(
                "schedule `daily at 2:5`: `2:5` is not a time of day (HH:MM, hours 0 to 23, \
                 minutes 00 to 59); {forms}"
            ),
        ),
        (
            "daily at 2pm",
            format!(
                "schedule `daily at 2pm`: `2pm` is not a time of day (HH:MM, hours 0 to 23, \
                 minutes 00 to 59); {forms}"
            ),
        ),
        (
            "daily at 02:00 ",
            format!(
                "schedule `daily at 02:00 `: `02:00 ` is not a time of day (HH:MM, hours 0 to 23, \
                 minutes 00 to 59); {forms}"
            ),
        ),
        (
            "monthly on day 32 at 06:00",
            format!(
                "schedule `monthly on day 32 at 06:00`: day 32 is not a day of the month (1 to 31; \
                 days past a month's end run on its last day); {forms}"
            ),
        ),
        (
            "monthly on day 0 at 06:00",
            format!(
                "schedule `monthly on day 0 at 06:00`: day 0 is not a day of the month (1 to 31; \
                 days past a month's end run on its last day); {forms}"
            ),
        ),
        (
            "monthly on day last at 06:00",
            format!(
                "schedule `monthly on day last at 06:00`: day last is not a day of the month (1 \
                 to 31; days past a month's end run on its last day); {forms}"
            ),
        ),
        (
            "monthly on day 1 at 6",
            format!(
                "schedule `monthly on day 1 at 6`: `6` is not a time of day (HH:MM, hours 0 to \
                 23, minutes 00 to 59); {forms}"
            ),
        ),
    ];
    for (text, message) in cases {
        let err = parse(text).expect_err(text);
        assert_eq!(err.to_string(), message, "for {text:?}");
    }
    assert_eq!(
        parse_for(RunKind::Refresh, "on-merge")
            .unwrap_err()
            .to_string(),
        "schedule `on-merge` is only for sync: refresh needs a clock, `daily at HH:MM` or \
         `monthly on day D at HH:MM` (D from 1 to 31)"
    );
}

// ---- occurrences ----

#[test]
fn daily_previous_and_next() {
    let la = zone("America/Los_Angeles");
    let now = at("2026-11-25T02:47-08:00");
    assert_eq!(
        previous_occurrence(daily(2, 0), &la, now),
        Some(at("2026-11-25T02:00-08:00"))
    );
    assert_eq!(
        next_occurrence(daily(2, 0), &la, now),
        Some(at("2026-11-26T02:00-08:00"))
    );
    // Exactly on the instant: it is the previous occurrence (≤ now), and the next is tomorrow.
    let on_time = at("2026-11-25T02:00-08:00");
    assert_eq!(
        previous_occurrence(daily(2, 0), &la, on_time),
        Some(on_time)
    );
    assert_eq!(
        next_occurrence(daily(2, 0), &la, on_time),
        Some(at("2026-11-26T02:00-08:00"))
    );
    // A second early: yesterday's.
    assert_eq!(
        previous_occurrence(daily(2, 0), &la, at("2026-11-25T01:59:59-08:00")),
        Some(at("2026-11-24T02:00-08:00"))
    );
    // The local date, not the UTC date, decides: 23:30 PST is already the next day in UTC.
    assert_eq!(
        previous_occurrence(daily(23, 0), &la, at("2026-11-25T23:30-08:00")),
        Some(at("2026-11-25T23:00-08:00"))
    );
}

#[test]
fn monthly_previous_and_next() {
    let la = zone("America/Los_Angeles");
    let now = at("2026-11-25T02:47-08:00");
    assert_eq!(
        previous_occurrence(monthly(1, 6, 0), &la, now),
        Some(at("2026-11-01T06:00-08:00"))
    );
    assert_eq!(
        next_occurrence(monthly(1, 6, 0), &la, now),
        Some(at("2026-12-01T06:00-08:00"))
    );
    // Across a year end.
    assert_eq!(
        previous_occurrence(monthly(15, 6, 0), &la, at("2027-01-10T00:00-08:00")),
        Some(at("2026-12-15T06:00-08:00"))
    );
    assert_eq!(
        next_occurrence(monthly(15, 6, 0), &la, at("2026-12-20T00:00-08:00")),
        Some(at("2027-01-15T06:00-08:00"))
    );
}

#[test]
fn day_past_the_month_end_runs_on_the_last_day() {
    let utc = TimeZone::UTC;
    let mid_march_2026 = at("2026-03-15T00:00Z");
    for day in [29, 30, 31] {
        assert_eq!(
            previous_occurrence(monthly(day, 6, 0), &utc, mid_march_2026),
            Some(at("2026-02-28T06:00Z")),
            "day {day} in February 2026"
        );
        assert_eq!(
            next_occurrence(monthly(day, 6, 0), &utc, at("2026-02-01T00:00Z")),
            Some(at("2026-02-28T06:00Z")),
            "day {day} in February 2026"
        );
    }
    // 2028 is a leap year: 29, 30 and 31 run on the 29th, 28 still on the 28th.
    let mid_march_2028 = at("2028-03-15T00:00Z");
    for day in [29, 30, 31] {
        assert_eq!(
            previous_occurrence(monthly(day, 6, 0), &utc, mid_march_2028),
            Some(at("2028-02-29T06:00Z")),
            "day {day} in February 2028"
        );
    }
    assert_eq!(
        previous_occurrence(monthly(28, 6, 0), &utc, mid_march_2028),
        Some(at("2028-02-28T06:00Z"))
    );
    // 30-day months, and back to the 31st in a long month.
    assert_eq!(
        previous_occurrence(monthly(31, 6, 0), &utc, at("2026-05-15T00:00Z")),
        Some(at("2026-04-30T06:00Z"))
    );
    assert_eq!(
        next_occurrence(monthly(31, 6, 0), &utc, at("2026-02-28T07:00Z")),
        Some(at("2026-03-31T06:00Z"))
    );
    // Once a month, every month of a year: twelve runs, each on the right last day.
    let runs = simulate(
        monthly(31, 6, 0),
        &utc,
        at("2026-01-01T00:05Z"),
        365 * 24,
        Some(at("2025-12-31T06:05Z")),
    );
    let days: Vec<String> = runs
        .iter()
        .map(|t| t.strftime("%m-%d").to_string())
        .collect();
    assert_eq!(
        days,
        [
            "01-31", "02-28", "03-31", "04-30", "05-31", "06-30", "07-31", "08-31", "09-30",
            "10-31", "11-30", "12-31"
        ]
    );
}

// ---- daylight saving time ----

#[test]
fn spring_forward_gap_runs_at_the_first_instant_after_the_gap() {
    let la = zone("America/Los_Angeles");
    // 2026-03-08: clocks go from 02:00 PST to 03:00 PDT; 02:30 does not exist.
    let dt = jiff::civil::date(2026, 3, 8).at(2, 30, 0, 0);
    // jiff's `compatible` would shift by the gap's length, to 03:30 PDT; the schedule runs at the
    // end of the gap, 03:00 PDT.
    assert_eq!(
        la.to_ambiguous_timestamp(dt).compatible().unwrap(),
        at("2026-03-08T03:30-07:00")
    );
    assert_eq!(
        previous_occurrence(daily(2, 30), &la, at("2026-03-08T12:00-07:00")),
        Some(at("2026-03-08T03:00-07:00"))
    );
    assert_eq!(
        next_occurrence(daily(2, 30), &la, at("2026-03-08T01:59-08:00")),
        Some(at("2026-03-08T03:00-07:00"))
    );
    assert_eq!(
        previous_occurrence(daily(2, 30), &la, at("2026-03-08T01:59-08:00")),
        Some(at("2026-03-07T02:30-08:00"))
    );
    // A wall time right at the gap's start, and one just before its end.
    assert_eq!(
        previous_occurrence(daily(2, 0), &la, at("2026-03-08T12:00-07:00")),
        Some(at("2026-03-08T03:00-07:00"))
    );
    assert_eq!(
        previous_occurrence(daily(2, 59), &la, at("2026-03-08T12:00-07:00")),
        Some(at("2026-03-08T03:00-07:00"))
    );
    assert_eq!(
        previous_occurrence(daily(3, 0), &la, at("2026-03-08T12:00-07:00")),
        Some(at("2026-03-08T03:00-07:00"))
    );
    assert_eq!(
        previous_occurrence(daily(1, 59), &la, at("2026-03-08T12:00-07:00")),
        Some(at("2026-03-08T01:59-08:00"))
    );
    // Monthly on the change day too.
    assert_eq!(
        previous_occurrence(monthly(8, 2, 0), &la, at("2026-03-20T00:00-07:00")),
        Some(at("2026-03-08T03:00-07:00"))
    );
    // Hourly triggers at :05 over three days: once a day, the change day at 03:05 PDT.
    let runs = simulate(
        daily(2, 30),
        &la,
        at("2026-03-07T00:05-08:00"),
        72,
        Some(at("2026-03-06T02:35-08:00")),
    );
    assert_eq!(
        runs,
        [
            at("2026-03-07T03:05-08:00"),
            at("2026-03-08T03:05-07:00"),
            at("2026-03-09T03:05-07:00"),
        ]
    );
}

#[test]
fn fall_back_fold_runs_once_at_the_earlier_instant() {
    let la = zone("America/Los_Angeles");
    // 2026-11-01: clocks go from 02:00 PDT back to 01:00 PST; 01:30 happens twice.
    assert_eq!(
        previous_occurrence(daily(1, 30), &la, at("2026-11-01T01:45-08:00")),
        Some(at("2026-11-01T01:30-07:00"))
    );
    assert_eq!(
        next_occurrence(daily(1, 30), &la, at("2026-11-01T01:00-07:00")),
        Some(at("2026-11-01T01:30-07:00"))
    );
    assert_eq!(
        next_occurrence(daily(1, 30), &la, at("2026-11-01T01:30-07:00")),
        Some(at("2026-11-02T01:30-08:00"))
    );
    // The trigger at 01:35 PDT runs; the one at 01:35 PST, an hour later, does not.
    let last = Some(at("2026-11-01T01:35-07:00"));
    assert!(!is_due(daily(1, 30), &la, at("2026-11-01T01:35-08:00"), last).is_due());
    let runs = simulate(
        daily(1, 30),
        &la,
        at("2026-10-31T00:35-07:00"),
        73,
        Some(at("2026-10-30T01:35-07:00")),
    );
    assert_eq!(
        runs,
        [
            at("2026-10-31T01:35-07:00"),
            at("2026-11-01T01:35-07:00"),
            at("2026-11-02T01:35-08:00"),
        ]
    );
}

#[test]
fn europe_london_gap_and_fold() {
    let london = zone("Europe/London");
    // 2026-03-29: 01:00 GMT → 02:00 BST; 01:30 does not exist.
    assert_eq!(
        previous_occurrence(daily(1, 30), &london, at("2026-03-29T12:00+01:00")),
        Some(at("2026-03-29T02:00+01:00"))
    );
    // 2026-10-25: 02:00 BST → 01:00 GMT; 01:30 happens twice, the schedule runs at 01:30 BST.
    assert_eq!(
        previous_occurrence(daily(1, 30), &london, at("2026-10-25T12:00Z")),
        Some(at("2026-10-25T01:30+01:00"))
    );
    let runs = simulate(
        daily(1, 30),
        &london,
        at("2026-10-24T12:10Z"),
        48,
        Some(at("2026-10-24T01:40+01:00")),
    );
    assert_eq!(
        runs,
        // The first trigger after 01:30 BST (00:30Z) is at 01:10Z, which is 01:10 GMT: after
        // the clocks went back, so the second 01:30 (GMT) does not run again.
        [at("2026-10-25T01:10Z"), at("2026-10-26T02:10Z")],
    );
}

#[test]
fn australia_sydney_southern_hemisphere() {
    let sydney = zone("Australia/Sydney");
    // 2026-04-05: DST ends, 03:00 AEDT → 02:00 AEST; 02:30 happens twice.
    assert_eq!(
        previous_occurrence(daily(2, 30), &sydney, at("2026-04-05T12:00+10:00")),
        Some(at("2026-04-05T02:30+11:00"))
    );
    let runs = simulate(
        daily(2, 30),
        &sydney,
        at("2026-04-04T12:45+11:00"),
        48,
        Some(at("2026-04-04T02:45+11:00")),
    );
    assert_eq!(
        runs,
        [at("2026-04-05T02:45+11:00"), at("2026-04-06T02:45+10:00")]
    );
    // 2026-10-04: DST starts, 02:00 AEST → 03:00 AEDT; 02:00 to 02:59 do not exist.
    for minute in [0, 30] {
        assert_eq!(
            previous_occurrence(daily(2, minute), &sydney, at("2026-10-04T12:00+11:00")),
            Some(at("2026-10-04T03:00+11:00"))
        );
    }
    let runs = simulate(
        daily(2, 0),
        &sydney,
        at("2026-10-03T12:15+10:00"),
        48,
        Some(at("2026-10-03T02:15+10:00")),
    );
    assert_eq!(
        runs,
        [at("2026-10-04T03:15+11:00"), at("2026-10-05T02:15+11:00")]
    );
    // Monthly in summer time, shown with the zone's abbreviation.
    let due = is_due(
        monthly(31, 6, 0),
        &sydney,
        at("2026-11-30T07:00+11:00"),
        Some(at("2026-10-31T06:05+11:00")),
    );
    assert_eq!(
        due.explain(RunKind::Sync).to_string(),
        "sync is due: scheduled 2026-11-30 06:00 AEDT, last run 2026-10-31 06:05 AEDT"
    );
}

// ---- is it due? ----

#[test]
fn due_explains_itself_in_the_schedules_zone() {
    let la = zone("America/Los_Angeles");
    let due = is_due(
        daily(2, 0),
        &la,
        at("2026-11-25T02:05-08:00"),
        Some(at("2026-11-24T02:03-08:00")),
    );
    assert!(due.is_due());
    assert_eq!(
        due.explain(RunKind::Refresh).to_string(),
        "refresh is due: scheduled 2026-11-25 02:00 PST, last run 2026-11-24 02:03 PST"
    );
    let not_due = is_due(
        daily(2, 0),
        &la,
        at("2026-11-25T03:05-08:00"),
        Some(at("2026-11-25T02:05-08:00")),
    );
    assert!(!not_due.is_due());
    assert_eq!(
        not_due.explain(RunKind::Refresh).to_string(),
        "refresh is not due: next 2026-11-26 02:00 PST; last run 2026-11-25 02:05 PST covers \
         2026-11-25 02:00 PST"
    );
    match not_due {
        Due::NotDue { next, .. } => assert_eq!(next.timestamp(), at("2026-11-26T02:00-08:00")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn never_run_is_due() {
    let la = zone("America/Los_Angeles");
    let due = is_due(monthly(1, 6, 0), &la, at("2026-11-25T10:00-08:00"), None);
    assert_eq!(
        due,
        Due::Due {
            occurrence: at("2026-11-01T06:00-08:00").to_zoned_datetime(la.clone()),
            last_run: None,
        }
    );
    assert_eq!(
        due.explain(RunKind::Sync).to_string(),
        "sync is due: scheduled 2026-11-01 06:00 PST, never run before"
    );
}

#[test]
fn on_merge_is_never_due_on_the_clock() {
    let la = zone("America/Los_Angeles");
    let now = at("2026-11-25T10:00-08:00");
    assert_eq!(previous_occurrence(Cadence::OnMerge, &la, now), None);
    assert_eq!(next_occurrence(Cadence::OnMerge, &la, now), None);
    let due = is_due(Cadence::OnMerge, &la, now, None);
    assert_eq!(due, Due::OnMerge);
    assert!(!due.is_due());
    assert_eq!(
        due.explain(RunKind::Sync).to_string(),
        "sync is not due: it runs on merge (when the pull request is merged), not on the clock"
    );
}

#[test]
fn late_trigger_runs_exactly_once() {
    let la = zone("America/Los_Angeles");
    let last = Some(at("2026-11-24T02:03-08:00"));
    // Before the instant: not yet.
    assert!(!is_due(daily(2, 0), &la, at("2026-11-25T01:47-08:00"), last).is_due());
    // The trigger fires 47 minutes late: still due.
    let late = at("2026-11-25T02:47-08:00");
    assert!(is_due(daily(2, 0), &la, late, last).is_due());
    // After recording that run, the rest of the day is not due.
    let runs = simulate(daily(2, 0), &la, late, 24, last);
    assert_eq!(runs, [late]);
    // Even when the trigger fires late by most of an hour, every day, one run a day.
    let runs = simulate(
        daily(2, 0),
        &la,
        at("2026-11-20T00:59-08:00"),
        5 * 24,
        Some(at("2026-11-19T02:59-08:00")),
    );
    assert_eq!(runs.len(), 5);
    assert!(
        runs.iter()
            .all(|t| t.to_zoned_datetime(la.clone()).hour() == 2)
    );
}

#[test]
fn missed_triggers_run_once_for_the_latest_occurrence() {
    let la = zone("America/Los_Angeles");
    // The runner was down from the 20th to the 25th: one run, for the 25th's 02:00.
    let last = Some(at("2026-11-20T02:05-08:00"));
    let back = at("2026-11-25T10:05-08:00");
    match is_due(daily(2, 0), &la, back, last) {
        Due::Due { occurrence, .. } => {
            assert_eq!(occurrence.timestamp(), at("2026-11-25T02:00-08:00"))
        }
        other => panic!("{other:?}"),
    }
    let runs = simulate(daily(2, 0), &la, back, 14, last);
    assert_eq!(runs, [back]);
    // Monthly, three months missed: one run, for November's.
    let last = Some(at("2026-08-01T06:05-07:00"));
    let back = at("2026-11-20T10:05-08:00");
    match is_due(monthly(1, 6, 0), &la, back, last) {
        Due::Due { occurrence, .. } => {
            assert_eq!(occurrence.timestamp(), at("2026-11-01T06:00-08:00"))
        }
        other => panic!("{other:?}"),
    }
    let runs = simulate(monthly(1, 6, 0), &la, back, 24 * 10, last);
    assert_eq!(runs, [back], "nothing else until 1 December");
}

// ---- last-run markers ----

#[test]
fn markers_round_trip_atomically_per_kind() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert_eq!(last_run(root, RunKind::Refresh).unwrap(), None);
    assert_eq!(last_run(root, RunKind::Sync).unwrap(), None);

    let path = record_run(root, RunKind::Refresh, at("2026-11-25T10:47:12.345Z")).unwrap();
    assert_eq!(path, Path::new("history/last-refresh"));
    assert_eq!(
        std::fs::read_to_string(root.join(&path)).unwrap(),
        "2026-11-25T10:47:12Z\n"
    );
    assert_eq!(
        last_run(root, RunKind::Refresh).unwrap(),
        Some(at("2026-11-25T10:47:12Z"))
    );
    assert_eq!(last_run(root, RunKind::Sync).unwrap(), None);

    // Overwrites; leaves no temporary file behind.
    record_run(root, RunKind::Refresh, at("2026-11-26T10:05:00Z")).unwrap();
    record_run(root, RunKind::Sync, at("2026-11-26T14:05:00Z")).unwrap();
    assert_eq!(
        last_run(root, RunKind::Refresh).unwrap(),
        Some(at("2026-11-26T10:05:00Z"))
    );
    assert_eq!(
        last_run(root, RunKind::Sync).unwrap(),
        Some(at("2026-11-26T14:05:00Z"))
    );
    let mut names: Vec<String> = std::fs::read_dir(root.join("history"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["last-refresh", "last-sync"]);

    // Markers are not history records.
    assert!(crate::history::read_all(root).unwrap().is_empty());
}

#[test]
fn a_marker_with_an_offset_or_without_a_newline_reads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("history")).unwrap();
    std::fs::write(
        dir.path().join("history/last-sync"),
        "2026-11-25T02:00:00-08:00",
    )
    .unwrap();
    assert_eq!(
        last_run(dir.path(), RunKind::Sync).unwrap(),
        Some(at("2026-11-25T10:00:00Z"))
    );
}

#[test]
fn a_broken_marker_says_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("history")).unwrap();
    std::fs::write(dir.path().join("history/last-refresh"), "yesterday\n").unwrap();
    let err = last_run(dir.path(), RunKind::Refresh).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("history/last-refresh: `yesterday` is not an RFC 3339 time ("),
        "{message}"
    );
    assert!(
        message.ends_with(
            "it should hold one line such as `2026-11-25T10:00:00Z`: fix it, or delete it to run \
             at the next hourly check"
        ),
        "{message}"
    );
}

// ---- properties, over zones with odd rules ----

mod properties {
    use proptest::prelude::*;

    use super::*;

    const ZONES: &[&str] = &[
        "UTC",
        "America/Los_Angeles",
        "America/St_Johns",
        "Europe/London",
        "Australia/Sydney",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "Pacific/Apia",
        "America/Santiago",
    ];

    fn cadence() -> impl Strategy<Value = Cadence> {
        prop_oneof![
            (0u8..24, 0u8..60).prop_map(|(hour, minute)| Cadence::Daily { hour, minute }),
            (1u8..=31, 0u8..24, 0u8..60).prop_map(|(day, hour, minute)| Cadence::Monthly {
                day,
                hour,
                minute
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// previous ≤ now < next, with nothing scheduled in between; and the instant chosen is
        /// on the right day, at the scheduled wall time unless that fell in a gap.
        #[test]
        fn occurrences_bracket_now(
            cadence in cadence(),
            zone in 0..ZONES.len(),
            // 2000-01-01 to 2040-01-01
            second in 946_684_800i64..2_208_988_800,
        ) {
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            let now = Timestamp::from_second(second).unwrap();
            let previous = previous_occurrence(cadence, &tz, now).unwrap();
            let next = next_occurrence(cadence, &tz, now).unwrap();
            prop_assert!(previous <= now && now < next, "{previous} {now} {next}");
            prop_assert_eq!(next_occurrence(cadence, &tz, previous), Some(next));
            prop_assert_eq!(previous_occurrence(cadence, &tz, next), Some(next));

            let local = previous.to_zoned_datetime(tz.clone());
            let (hour, minute) = match cadence {
                Cadence::Daily { hour, minute } => (hour, minute),
                Cadence::Monthly { day, hour, minute } => {
                    let expected = (day as i8).min(local.days_in_month());
                    // A gap resolves to its end, which is the same day but for a skipped day.
                    prop_assert!(
                        local.day() == expected || local.day() == expected + 1,
                        "{local} for {cadence}"
                    );
                    (hour, minute)
                }
                Cadence::OnMerge => unreachable!(),
            };
            let wall = (local.hour() as u8, local.minute() as u8);
            if wall != (hour, minute) {
                // Only a gap moves the wall time, and only to the instant the clocks jumped.
                let transition = tz.preceding(previous.checked_add(jiff::SignedDuration::from_nanos(1)).unwrap()).next().unwrap();
                prop_assert_eq!(transition.timestamp(), previous, "{} for {}", local, cadence);
            }
        }

        /// An hourly trigger, however late within the hour, runs once per scheduled instant.
        #[test]
        fn hourly_trigger_runs_once_per_occurrence(
            cadence in cadence(),
            zone in 0..ZONES.len(),
            start in 946_684_800i64..2_208_988_800,
            late_minutes in 0i64..60,
        ) {
            let tz = TimeZone::get(ZONES[zone]).unwrap();
            // Triggers on the hour (UTC) plus `late_minutes`, for ten days.
            let start = Timestamp::from_second(start - start.rem_euclid(3600) + late_minutes * 60).unwrap();
            let last = previous_occurrence(cadence, &tz, start);
            let runs = simulate(cadence, &tz, start, 240, last);
            let end = start.checked_add(jiff::SignedDuration::from_hours(239)).unwrap();
            // The scheduled instants in (start, end].
            let mut expected = 0;
            let mut t = start;
            while let Some(next) = next_occurrence(cadence, &tz, t) {
                if next > end {
                    break;
                }
                expected += 1;
                t = next;
            }
            prop_assert_eq!(runs.len(), expected, "{:?} {}", runs, cadence);
        }
    }
}
