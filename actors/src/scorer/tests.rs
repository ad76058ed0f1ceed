use super::*;

#[test]
fn embedded_weights_load_and_resolve() {
    let w = Weights::embedded();
    assert_eq!(w.format, WEIGHTS_FORMAT);
    let scorer = Scorer::new(&w).unwrap();
    // Every feature the scorer computes has a documented default.
    for f in Feature::ALL {
        let fw = w.features.iter().find(|x| x.name == f.name());
        let fw = fw.unwrap_or_else(|| panic!("no default for {}", f.name()));
        assert!(
            fw.note.as_deref().is_some_and(|n| n.len() > 20),
            "{} undocumented",
            f.name()
        );
    }
    assert_eq!(scorer.thresholds(), &StageThresholds::default());
}

#[test]
fn weights_file_round_trips_through_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.json");
    let mut w = Weights::embedded();
    w.intercept = -1.234_567_890_123;
    w.features[0].weight = 0.1 + 0.2; // not exactly representable: must survive bit for bit
    w.provenance = Some(serde_json::json!({"kind": "trained", "auc": 0.79}));
    w.save(&path).unwrap();
    let back = Weights::load(&path).unwrap();
    assert_eq!(back, w);
    assert_eq!(back.features[0].weight.to_bits(), (0.1f64 + 0.2).to_bits());
}

#[test]
fn bad_weights_files_are_rejected_with_a_reason() {
    let base = Weights::embedded();
    let mut dup = base.clone();
    dup.features.push(dup.features[0].clone());
    assert!(matches!(
        Scorer::new(&dup),
        Err(ScorerError::DuplicateFeature(_))
    ));

    let mut unknown = base.clone();
    unknown.features.push(FeatureWeight {
        name: "age".into(),
        weight: 0.1,
        note: None,
    });
    assert!(
        Weights::from_json(&unknown.to_json_pretty()).is_ok(),
        "a trained file may name any column"
    );
    assert!(matches!(Scorer::new(&unknown), Err(ScorerError::UnknownFeature(n)) if n == "age"));

    let mut fmt = base.clone();
    fmt.format = "other".into();
    assert!(matches!(
        Weights::from_json(&fmt.to_json_pretty()),
        Err(ScorerError::Format(_))
    ));

    let mut value = serde_json::to_value(&base).unwrap();
    value["intercept"] = serde_json::json!("x");
    let text = value.to_string();
    assert!(matches!(
        Weights::from_json(&text),
        Err(ScorerError::Parse(_))
    ));
    assert!(matches!(
        Weights::load("/nonexistent/w.json"),
        Err(ScorerError::Read { .. })
    ));
}

#[test]
fn contributions_are_value_times_weight_and_sum_to_the_log_odds() {
    let scorer = Scorer::embedded();
    let lead = LeadFeatures {
        source: LeadSource::Inbound,
        prior_contacts: 2,
        days_since_last_contact: Some(10.0),
        stage: Stage::Contacted,
    };
    let mut s = CallSignals::default();
    s.observe_customer_sentiment(0.3);
    s.observe_customer_sentiment(0.6);
    s.buying_signals = 1;
    s.objections_raised = 1;
    s.customer_questions = 2;
    s.talk.agent_ms = 50_000;
    s.talk.customer_ms = 70_000;
    s.call_ms = 240_000;
    let u = scorer.score(&lead, &s);
    for c in &u.contributions {
        assert_eq!(c.contribution, c.value * c.weight, "{}", c.feature);
        let f = Feature::from_name(&c.feature).unwrap();
        assert_eq!(c.value, f.value(&lead, &s));
    }
    let z = u.log_odds();
    assert!((sigmoid(z) - u.score).abs() < 1e-12);
    assert!((scorer.log_odds(&lead, &s) - z).abs() < 1e-12);
    let inbound = u
        .contributions
        .iter()
        .find(|c| c.feature == "source=inbound")
        .unwrap();
    assert_eq!(inbound.value, 1.0);
    let referral = u
        .contributions
        .iter()
        .find(|c| c.feature == "source=referral")
        .unwrap();
    assert_eq!(referral.value, 0.0);
}

#[test]
fn scores_order_leads_the_way_sales_practice_does() {
    let scorer = Scorer::embedded();
    let lead = |source| LeadFeatures {
        source,
        stage: Stage::Contacted,
        ..Default::default()
    };
    let quiet = CallSignals::default();
    let base = scorer.score(&lead(LeadSource::Other), &quiet).score;
    assert!(
        (base - sigmoid(-2.1)).abs() < 1e-12,
        "no signal scores the base rate"
    );
    assert!(scorer.score(&lead(LeadSource::Referral), &quiet).score > base);
    assert!(scorer.score(&lead(LeadSource::ColdList), &quiet).score < base);

    let mut hot = CallSignals::default();
    hot.observe_customer_sentiment(0.6);
    hot.buying_signals = 2;
    let mut cold = CallSignals::default();
    cold.observe_customer_sentiment(-0.6);
    cold.objections_raised = 2;
    let l = lead(LeadSource::Other);
    assert!(scorer.score(&l, &hot).score > base);
    assert!(scorer.score(&l, &cold).score < base);

    let mut handled = cold.clone();
    handled.objections_handled = 2;
    assert!(scorer.score(&l, &handled).score > scorer.score(&l, &cold).score);
}

#[test]
fn extreme_inputs_stay_finite_and_in_range() {
    let scorer = Scorer::embedded();
    let lead = LeadFeatures {
        source: LeadSource::Referral,
        prior_contacts: u32::MAX,
        days_since_last_contact: Some(f64::INFINITY),
        stage: Stage::Engaged,
    };
    let mut s = CallSignals {
        buying_signals: u32::MAX,
        objections_raised: u32::MAX,
        call_ms: u64::MAX,
        ..Default::default()
    };
    s.talk.customer_ms = u64::MAX / 2;
    let u = scorer.score(&lead, &s);
    assert!(u.score.is_finite() && (0.0..=1.0).contains(&u.score));
    assert!(u.contributions.iter().all(|c| c.contribution.is_finite()));
    assert!(sigmoid(1e6) <= 1.0 && sigmoid(-1e6) >= 0.0);
}

#[test]
fn lead_sources_parse_leniently() {
    assert_eq!(LeadSource::parse_lenient("Web Form"), LeadSource::WebForm);
    assert_eq!(
        LeadSource::parse_lenient(" cold-list "),
        LeadSource::ColdList
    );
    assert_eq!(LeadSource::parse_lenient("Referral"), LeadSource::Referral);
    assert_eq!(
        LeadSource::parse_lenient("carrier pigeon"),
        LeadSource::Other
    );
    for f in Feature::ALL {
        assert_eq!(Feature::from_name(f.name()), Some(f));
    }
}
