use super::*;

fn input(symbol: &str, candles: usize) -> SymbolInput {
    let closes: Vec<f64> = (0..candles).map(|i| 100.0 + i as f64).collect();
    SymbolInput::from_closes(symbol, &closes)
}

/// Says whatever it was built to say, on every symbol.
struct Says(Vec<Intent>);

impl Strategy for Says {
    fn name(&self) -> &str {
        "says"
    }
    fn warmup(&self) -> usize {
        3
    }
    fn evaluate(&self, _: &Context<'_>, out: &mut Vec<Intent>) {
        out.extend(self.0.iter().cloned());
    }
}

struct Panics;

impl Strategy for Panics {
    fn name(&self) -> &str {
        "panics"
    }
    fn evaluate(&self, ctx: &Context<'_>, _: &mut Vec<Intent>) {
        if ctx.symbol == "B" {
            panic!("no idea what {} is", ctx.symbol);
        }
    }
}

#[test]
fn intents_become_signals_with_the_symbol_strategy_and_newest_candle() {
    let one = Dec::ONE;
    let s = Says(vec![
        Intent::signal(SignalSide::Buy, 0.7, "up"),
        Intent::limit(SignalSide::Sell, one, one, TimeInForce::PostOnly, "fade"),
        Intent::target(Dec::ZERO, "flat"),
        Intent::cancel("stop"),
    ]);
    let (said, dropped) = evaluate_all(&s, &[input("A", 5)], 0.5).unwrap();
    assert_eq!(dropped, 0);
    assert_eq!(said.len(), 4);
    assert!(said.iter().all(|x| x.symbol == "A" && x.strategy == "says"));
    assert!(said.iter().all(|x| x.candle_ms == 4 * 60_000));
    let labels: Vec<&str> = said.iter().map(Signal::label).collect();
    assert_eq!(labels, ["Buy", "Sell", "Target", "Cancel"]);
    assert_eq!(said[0].confidence(), 0.7);
    let json = serde_json::to_value(&said[1]).unwrap();
    assert_eq!(json["kind"], "limit");
    assert_eq!(json["tif"], "PostOnly");
}

#[test]
fn a_strategy_is_not_called_before_its_warmup() {
    let s = Says(vec![Intent::signal(SignalSide::Buy, 1.0, "up")]);
    let (said, _) = evaluate_all(&s, &[input("A", 2), input("B", 3)], 0.0).unwrap();
    assert_eq!(said.len(), 1);
    assert_eq!(said[0].symbol, "B");
}

#[test]
fn malformed_intents_are_dropped_and_counted() {
    let s = Says(vec![
        Intent::signal(SignalSide::Buy, f64::NAN, "nan"),
        Intent::signal(SignalSide::Buy, 1.5, "too sure"),
        Intent::signal(SignalSide::Buy, 0.1, "below the minimum"),
        Intent::market(SignalSide::Buy, Dec::ZERO, "nothing"),
        Intent::limit(
            SignalSide::Buy,
            Dec::ONE,
            Dec::ZERO,
            TimeInForce::Gtc,
            "free",
        ),
        Intent::signal(SignalSide::Sell, 0.9, "fine"),
    ]);
    let (said, dropped) = evaluate_all(&s, &[input("A", 5)], 0.3).unwrap();
    assert_eq!(dropped, 5);
    assert_eq!(said.len(), 1);
    assert_eq!(said[0].reason, "fine");
}

#[test]
fn a_panicking_strategy_is_a_fault_with_its_message_not_a_crash() {
    let r = evaluate_all(&Panics, &[input("A", 1), input("B", 1)], 0.0);
    assert_eq!(r, Err(StrategyFault::Panicked("no idea what B is".into())));
    // And the same call on symbols it can handle is fine.
    assert_eq!(
        evaluate_all(&Panics, &[input("A", 1)], 0.0),
        Ok((Vec::new(), 0))
    );
}
