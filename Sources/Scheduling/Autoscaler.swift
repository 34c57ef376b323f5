/// Scale-out and scale-in rules for replicas behind one queue.
///
/// Defaults are the reference's: scale out when GPU utilisation exceeds 80 % or more than 10
/// requests are queued; scale in when utilisation stays below 20 % for 10 minutes; keep at least
/// one replica (no cold start for the first request) and at most `maxReplicas` (the budget cap).
public struct AutoscalingConfiguration: Sendable, Hashable, Codable {
    public var minReplicas: Int
    public var maxReplicas: Int
    /// Scale out above this mean utilisation of ready replicas (0 … 1). Default 0.8.
    public var scaleOutUtilization: Double
    /// Scale out when more requests than this are queued. Default 10.
    public var scaleOutQueueDepth: Int
    /// Scale in below this utilisation… Default 0.2.
    public var scaleInUtilization: Double
    /// …sustained this long (seconds). Default 600.
    public var scaleInAfter: Double
    /// No further scaling action for this long after one (seconds). Default 60.
    public var cooldown: Double
    /// Seconds from scale-out to a replica serving (node + pod start, weights load). Default 120.
    public var coldStart: Double
    /// Seconds between evaluations (the metrics window). Default 15.
    public var evaluationInterval: Double
    /// GPUs per replica, for GPU-hours. Default 1.
    public var gpusPerReplica: Int

    public init(minReplicas: Int = 1, maxReplicas: Int = 8, scaleOutUtilization: Double = 0.8, scaleOutQueueDepth: Int = 10,
                scaleInUtilization: Double = 0.2, scaleInAfter: Double = 600, cooldown: Double = 60, coldStart: Double = 120,
                evaluationInterval: Double = 15, gpusPerReplica: Int = 1) {
        self.minReplicas = minReplicas
        self.maxReplicas = maxReplicas
        self.scaleOutUtilization = scaleOutUtilization
        self.scaleOutQueueDepth = scaleOutQueueDepth
        self.scaleInUtilization = scaleInUtilization
        self.scaleInAfter = scaleInAfter
        self.cooldown = cooldown
        self.coldStart = coldStart
        self.evaluationInterval = evaluationInterval
        self.gpusPerReplica = gpusPerReplica
    }

    public func validate() throws {
        guard minReplicas >= 1, maxReplicas >= minReplicas, maxReplicas <= 10_000 else {
            throw SchedulingError(.invalidConfiguration, "replicas min \(minReplicas) max \(maxReplicas); use 1 <= min <= max <= 10,000")
        }
        for (n, v) in [("scale-out utilisation", scaleOutUtilization), ("scale-in utilisation", scaleInUtilization)] {
            guard v.isFinite, v >= 0, v <= 1 else { throw SchedulingError.invalid(n, v, expected: "a fraction in 0 … 1") }
        }
        guard scaleInUtilization < scaleOutUtilization else {
            throw SchedulingError(.invalidConfiguration, "scale-in utilisation \(scaleInUtilization) must be below scale-out utilisation \(scaleOutUtilization), or replicas would flap")
        }
        guard scaleOutQueueDepth >= 0 else { throw SchedulingError(.invalidConfiguration, "scale-out queue depth is \(scaleOutQueueDepth); use 0 or more") }
        try requireFinite(scaleInAfter, "scale-in delay", nonNegative: true)
        try requireFinite(cooldown, "cooldown", nonNegative: true)
        try requireFinite(coldStart, "cold start", nonNegative: true)
        try requireFinite(evaluationInterval, "evaluation interval", positive: true)
        guard gpusPerReplica >= 1 else { throw SchedulingError(.invalidConfiguration, "GPUs per replica is \(gpusPerReplica); use at least 1") }
    }
}

/// What the autoscaler wants done.
public enum ScalingAction: Sendable, Hashable {
    case none
    case scaleOut
    case scaleIn
}

/// The autoscaling rules as a value-type state machine: the owner passes in the time and the
/// observed metrics; the autoscaler answers with an action and remembers cooldowns and how long
/// utilisation has been low.
public struct Autoscaler: Sendable {
    public let configuration: AutoscalingConfiguration
    var lastAction: Double = -.infinity
    /// Since when utilisation has been continuously below the scale-in threshold.
    public private(set) var lowSince: Double?

    public init(_ configuration: AutoscalingConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
    }

    /// Evaluates the rules at `now`. `replicas` counts ready and starting replicas (not draining ones).
    public mutating func evaluate(now: Double, utilization: Double, queueDepth: Int, replicas: Int) -> ScalingAction {
        let c = configuration
        if utilization < c.scaleInUtilization && queueDepth == 0 {
            if lowSince == nil { lowSince = now }
        } else {
            lowSince = nil
        }
        guard now - lastAction >= c.cooldown else { return .none }
        if (utilization > c.scaleOutUtilization || queueDepth > c.scaleOutQueueDepth) && replicas < c.maxReplicas {
            lastAction = now
            return .scaleOut
        }
        if let since = lowSince, now - since >= c.scaleInAfter, replicas > c.minReplicas {
            lastAction = now
            lowSince = now  // another full low period before the next scale-in
            return .scaleIn
        }
        if replicas < c.minReplicas {
            lastAction = now
            return .scaleOut
        }
        return .none
    }
}

/// One scaling event of a simulation.
public struct ScalingEvent: Sendable, Hashable, Codable {
    public var time: Double
    /// "scale-out", "ready", "scale-in", "stopped".
    public var event: String
    public var replica: Int
    public var utilization: Double
    public var queueDepth: Int
}
