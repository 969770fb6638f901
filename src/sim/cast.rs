//! The cast of the simulated contact center: organization, agents, queues, and the small
//! random helpers every generator shares. All of it is derived from the seed alone.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::wav::mix64;
use super::world::SimRef;

pub(super) const FIRST_NAMES: [&str; 24] = [
    "Joseph", "Maria", "Aisha", "Daniel", "Chen", "Sofia", "Liam", "Priya", "Mateo", "Hannah",
    "Kenji", "Olivia", "Tariq", "Emma", "Lucas", "Fatima", "Noah", "Ingrid", "Diego", "Grace",
    "Yusuf", "Chloe", "Ravi", "Elena",
];
pub(super) const LAST_NAMES: [&str; 24] = [
    "Lambert",
    "Garcia",
    "Okafor",
    "Novak",
    "Wang",
    "Rossi",
    "Murphy",
    "Sharma",
    "Fernandez",
    "Becker",
    "Tanaka",
    "Johnson",
    "Haddad",
    "Dubois",
    "Silva",
    "Khan",
    "Andersen",
    "Larsen",
    "Moreno",
    "Kim",
    "Demir",
    "Martin",
    "Patel",
    "Ivanova",
];
const QUEUE_NAMES: [&str; 8] = [
    "Technical Support Queue",
    "Billing Queue",
    "Sales Queue",
    "Customer Care Queue",
    "Retention Queue",
    "Spanish Support Queue",
    "Premium Support Queue",
    "Collections Queue",
];
pub(super) const REASONS: [&str; 8] = [
    "Credit",
    "Billing",
    "Technical Issue",
    "Sales Inquiry",
    "Account Update",
    "Cancellation",
    "Complaint",
    "General Question",
];
const AGENTS: usize = 20;
const QUEUES: usize = 6;
/// Per-world constants shared by all tasks.
pub(super) struct Cast {
    pub agents: Vec<SimRef>,
    /// Queue plus the number customers dial to reach it.
    pub queues: Vec<(SimRef, String)>,
    pub virtual_agent_id: String,
    pub ccai_config_id: String,
}

pub(super) fn sub_rng(seed: u64, label: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix64(seed ^ mix64(label)))
}

pub(super) fn uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

/// Masks a phone number the way captures participants show it: `+1415****1234`.
pub(super) fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 9 {
        return "****".to_string();
    }
    let head: String = chars[..5].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

pub(super) fn make_cast(seed: u64) -> (String, Cast) {
    let mut rng = sub_rng(seed, 1);
    let org_id = uuid(&mut rng);
    let mut firsts: Vec<usize> = (0..FIRST_NAMES.len()).collect();
    let mut lasts: Vec<usize> = (0..LAST_NAMES.len()).collect();
    firsts.shuffle(&mut rng);
    lasts.shuffle(&mut rng);
    let agents = firsts
        .iter()
        .zip(&lasts)
        .take(AGENTS)
        .map(|(&f, &l)| SimRef {
            id: uuid(&mut rng),
            name: format!("{} {}", FIRST_NAMES[f], LAST_NAMES[l]),
        })
        .collect();
    let mut queue_names: Vec<&str> = QUEUE_NAMES.to_vec();
    queue_names.shuffle(&mut rng);
    let queues = queue_names
        .iter()
        .take(QUEUES)
        .map(|name| {
            let queue = SimRef {
                id: uuid(&mut rng),
                name: (*name).to_string(),
            };
            (queue, format!("+1800555{:04}", rng.random_range(0..10_000)))
        })
        .collect();
    let cast = Cast {
        agents,
        queues,
        virtual_agent_id: uuid(&mut rng),
        ccai_config_id: format!("cfg-id-{}", rng.random_range(100..1000)),
    };
    (org_id, cast)
}

pub(super) fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// An agent other than `not`.
pub(super) fn other_agent<'a>(rng: &mut ChaCha8Rng, cast: &'a Cast, not: &SimRef) -> &'a SimRef {
    let i = cast.agents.iter().position(|a| a == not).unwrap_or(0);
    let step = rng.random_range(1..cast.agents.len());
    &cast.agents[(i + step) % cast.agents.len()]
}
