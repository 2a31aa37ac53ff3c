/// The rule-based reading of a merchant's segmentation request that mock judges start from.
///
/// It looks for the vocabulary of the demo corpus (scripts/generate-corpus) and is wrong on
/// purpose where a request mixes cues, as a real model would be on hard cases.
public enum MockClassifier {
    /// Checked in order: the first rule with a matching word wins.
    static let rules: [(label: String, words: [String])] = [
        (
            "wrong_skill",
            ["write", "draft", "send", "translate", "refund", "price", "discount", "revenue", "inventory", "publish"]
        ),
        (
            "missing_capability",
            [
                "income", "age", "gender", "female", "male", "salary", "visited", "instagram", "predicted", "political",
                "religion", "credit",
            ]
        ),
        ("ambiguous", ["paris", "spring", "either", "recently", "season", "or", "portland", "holidays"]),
        (
            "needs_more_context",
            ["best", "loyal", "lot", "good", "top", "engaged", "vip", "valuable", "usual", "active"]
        ),
    ]

    /// The label the rules give `text`, if the taxonomy has it; else `fallback`.
    public static func classify(_ text: String, labels: [String], fallback: String) -> String {
        let words = Set(text.lowercased().split(whereSeparator: { !$0.isLetter }).map(String.init))
        for rule in rules where labels.contains(rule.label) {
            if rule.words.contains(where: words.contains) { return rule.label }
        }
        return labels.contains("valid") ? "valid" : fallback
    }
}
