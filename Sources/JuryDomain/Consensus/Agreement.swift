import Foundation

/// Agreement statistics, computed as the standard implementations compute them (the tests hold
/// them to scikit-learn, statsmodels and the `krippendorff` package on fixed vote matrices).
public enum Agreement {
    /// Cohen's kappa between two raters of the same items (`first[i]` and `second[i]` label item
    /// i), as scikit-learn's `cohen_kappa_score`. Nil when chance agreement is 1 (one label throughout).
    public static func cohenKappa(_ first: [String], _ second: [String]) -> Double? {
        precondition(first.count == second.count, "cohenKappa needs paired labels")
        guard !first.isEmpty else { return nil }
        let n = Double(first.count)
        var rows: [String: Double] = [:]
        var columns: [String: Double] = [:]
        var agreed = 0.0
        for (a, b) in zip(first, second) {
            rows[a, default: 0] += 1
            columns[b, default: 0] += 1
            if a == b { agreed += 1 }
        }
        let observed = agreed / n
        let expected = rows.reduce(0.0) { $0 + $1.value * (columns[$1.key] ?? 0) } / (n * n)
        guard expected < 1 else { return nil }
        return (observed - expected) / (1 - expected)
    }

    /// Fleiss' kappa over items each rated by the same number of raters, as statsmodels'
    /// `fleiss_kappa(table, method="fleiss")`; each item is its labels' counts. Items rated by
    /// fewer raters than the most are left out (statsmodels requires every item fully rated).
    /// Nil without items, with fewer than two raters, or when chance agreement is 1.
    public static func fleissKappa(_ items: [[String: Int]]) -> Double? {
        let raters = items.map { $0.values.reduce(0, +) }.max() ?? 0
        let full = items.filter { $0.values.reduce(0, +) == raters }
        guard raters >= 2, !full.isEmpty else { return nil }
        let r = Double(raters)
        let total = Double(full.count) * r
        var marginals: [String: Double] = [:]
        var observed = 0.0
        for item in full {
            var squares = 0.0
            for (label, count) in item {
                marginals[label, default: 0] += Double(count)
                squares += Double(count * count)
            }
            observed += (squares - r) / (r * (r - 1))
        }
        observed /= Double(full.count)
        let expected = marginals.values.reduce(0.0) { $0 + ($1 / total) * ($1 / total) }
        guard expected < 1 else { return nil }
        return (observed - expected) / (1 - expected)
    }

    /// Krippendorff's alpha for nominal data, as the `krippendorff` package's
    /// `alpha(level_of_measurement="nominal")`; each item is its labels' counts, and items with
    /// one value or none pair with nothing. Nil when fewer than two values occur or no item has two.
    public static func krippendorffAlphaNominal(_ items: [[String: Int]]) -> Double? {
        var coincidences: [String: [String: Double]] = [:]
        for item in items {
            let m = Double(item.values.reduce(0, +))
            guard m >= 2 else { continue }
            for (a, countA) in item {
                for (b, countB) in item {
                    let pairs = Double(countA) * Double(countB) - (a == b ? Double(countA) : 0)
                    coincidences[a, default: [:]][b, default: 0] += pairs / (m - 1)
                }
            }
        }
        let perValue = coincidences.mapValues { $0.values.reduce(0, +) }
        let n = perValue.values.reduce(0, +)
        guard perValue.count >= 2, n > 1 else { return nil }
        var disagreementObserved = 0.0
        for (a, row) in coincidences {
            for (b, value) in row where a != b { disagreementObserved += value }
        }
        let sumSquares = perValue.values.reduce(0.0) { $0 + $1 * $1 }
        let disagreementExpected = (n * n - sumSquares) / (n - 1)
        guard disagreementExpected > 0 else { return nil }
        return 1 - disagreementObserved / disagreementExpected
    }
}

/// The Dawid-Skene model (1979): each judge's confusion matrix and the labels' priors, fitted by
/// EM to the votes alone. It follows crowd-kit's `DawidSkene` step for step (majority-vote start,
/// probabilities floored at 1e-10, stopping when the evidence lower bound per vote gains less
/// than `tolerance`), so its posteriors match crowd-kit's.
public struct DawidSkene: Sendable {
    /// The labels that occur in the votes, in order.
    public let labels: [String]
    public let priors: [Double]
    /// Per task given to `fit`, the posterior of each label (in `labels` order); empty for a task without votes.
    public let posteriors: [[Double]]
    /// Judge, then the label it gave, then the true label's index: P(gave | true).
    public let errors: [String: [String: [Double]]]
    public let iterations: Int

    static let floor = 1e-10

    /// Fits the model to `tasks`, each one example's votes (judge name to label).
    public static func fit(tasks: [[String: String]], maxIterations: Int = 100, tolerance: Double = 1e-5)
        -> DawidSkene
    {
        let labels = Array(Set(tasks.flatMap(\.values))).sorted()
        let index = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
        let k = labels.count
        // Votes as (task, judge, label index), the model's data.
        let responses = tasks.enumerated().flatMap { task, votes in
            votes.sorted { $0.key < $1.key }.map { (task: task, judge: $0.key, label: index[$0.value]!) }
        }
        guard !responses.isEmpty else {
            return DawidSkene(labels: [], priors: [], posteriors: tasks.map { _ in [] }, errors: [:], iterations: 0)
        }
        let voted = Set(responses.map(\.task))

        // Majority vote: each task's share of votes per label.
        var probabilities = [[Double]](repeating: [Double](repeating: 0, count: k), count: tasks.count)
        for response in responses { probabilities[response.task][response.label] += 1 }
        for task in voted {
            let total = probabilities[task].reduce(0, +)
            probabilities[task] = probabilities[task].map { $0 / total }
        }

        func priorsOf(_ probabilities: [[Double]]) -> [Double] {
            var sums = [Double](repeating: 0, count: k)
            for task in voted { for c in 0..<k { sums[c] += probabilities[task][c] } }
            return sums.map { $0 / Double(voted.count) }
        }
        func errorsOf(_ probabilities: [[Double]]) -> [String: [Int: [Double]]] {
            var counts: [String: [Int: [Double]]] = [:]
            for response in responses {
                var row = counts[response.judge]?[response.label] ?? [Double](repeating: 0, count: k)
                for c in 0..<k { row[c] += probabilities[response.task][c] }
                counts[response.judge, default: [:]][response.label] = row
            }
            // Floored, then each true label's column normalised over the labels the judge gave.
            return counts.mapValues { rows in
                let floored = rows.mapValues { $0.map { max($0, floor) } }
                var columnSums = [Double](repeating: 0, count: k)
                for row in floored.values { for c in 0..<k { columnSums[c] += row[c] } }
                return floored.mapValues { row in (0..<k).map { row[$0] / columnSums[$0] } }
            }
        }
        func expectation(priors: [Double], errors: [String: [Int: [Double]]]) -> [[Double]] {
            var logLikelihoods = [[Double]](repeating: [Double](repeating: 0, count: k), count: tasks.count)
            for task in voted { logLikelihoods[task] = priors.map { log2(max($0, floor)) } }
            for response in responses {
                let row = errors[response.judge]![response.label]!
                for c in 0..<k { logLikelihoods[response.task][c] += log2(row[c]) }
            }
            var result = [[Double]](repeating: [Double](repeating: 0, count: k), count: tasks.count)
            for task in voted {
                let top = logLikelihoods[task].max()!
                let scaled = logLikelihoods[task].map { exp2($0 - top) }
                let sum = scaled.reduce(0, +)
                result[task] = scaled.map { $0 / sum }
            }
            return result
        }
        func lowerBound(_ probabilities: [[Double]], priors: [Double], errors: [String: [Int: [Double]]]) -> Double {
            var joint = 0.0
            for response in responses {
                let row = errors[response.judge]![response.label]!
                for c in 0..<k {
                    joint += probabilities[response.task][c] * (log(row[c]) + log(max(priors[c], floor)))
                }
            }
            var entropy = 0.0
            for task in voted {
                for p in probabilities[task] {
                    let q = max(p, floor)
                    entropy -= log(q) * q
                }
            }
            return (joint + entropy) / Double(responses.count)
        }

        var priors = priorsOf(probabilities)
        var errors = errorsOf(probabilities)
        var loss = -Double.infinity
        var iterations = 0
        for _ in 0..<maxIterations {
            iterations += 1
            probabilities = expectation(priors: priors, errors: errors)
            priors = priorsOf(probabilities)
            errors = errorsOf(probabilities)
            let newLoss = lowerBound(probabilities, priors: priors, errors: errors)
            if newLoss - loss < tolerance { break }
            loss = newLoss
        }
        let posteriors = tasks.indices.map { task in
            voted.contains(task) ? probabilities[task].map { max($0, floor) } : []
        }
        return DawidSkene(
            labels: labels, priors: priors, posteriors: posteriors,
            errors: errors.mapValues { rows in
                Dictionary(uniqueKeysWithValues: rows.map { (labels[$0.key], $0.value) })
            },
            iterations: iterations)
    }

    /// Task `task`'s posterior as label to probability.
    public func posterior(ofTask task: Int) -> [String: Double] {
        Dictionary(uniqueKeysWithValues: zip(labels, posteriors[task]))
    }
}
