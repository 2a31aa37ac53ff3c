import JuryPostgres

/// What the catalog says of the schema Jury lives in (the session's current schema), one line
/// per object or part of one, so that two schemas can be compared: relations with their
/// storage settings, columns in order with their types, defaults and nullability,
/// constraints, indexes, triggers, views and functions with their whole definitions.
/// Privileges and owners are left out: `jury migrate` sets them after every step.
enum SchemaCatalog {
    /// Each entry is a kind, a name and a definition, without the schema's name.
    static func read(_ connection: PostgresConnection) async throws -> Set<String> {
        let rows = try await connection.query(
            """
            WITH here AS (SELECT current_schema()::regnamespace AS oid),
            entries AS (
            WITH relations AS (
                SELECT c.oid, c.relname, c.relkind, c.reloptions FROM pg_class c, here
                WHERE c.relnamespace = here.oid AND c.relname NOT LIKE 'jury\\_schema\\_migrations%'
            )
            SELECT 'relation ' || r.relname || ': ' || r.relkind::text || ' ' || coalesce(array_to_string(r.reloptions, ','), '')
                AS entry
            FROM relations r
            UNION ALL
            SELECT 'column ' || r.relname || '.' || a.attname || ': #'
                   || row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) || ' '
                   || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                   || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
                   || CASE WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text ELSE '' END
                   || CASE WHEN a.attgenerated <> '' THEN ' generated' ELSE '' END
            FROM relations r JOIN pg_attribute a ON a.attrelid = r.oid
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE r.relkind IN ('r', 'p', 'v') AND a.attnum > 0 AND NOT a.attisdropped
            UNION ALL
            SELECT 'constraint ' || r.relname || '.' || c.conname || ': ' || pg_get_constraintdef(c.oid)
            FROM pg_constraint c JOIN relations r ON r.oid = c.conrelid
            UNION ALL
            SELECT 'index ' || r.relname || ': ' || pg_get_indexdef(r.oid)
            FROM relations r WHERE r.relkind = 'i'
            UNION ALL
            SELECT 'sequence ' || r.relname || ': ' || format_type(s.seqtypid, NULL) || ' ' || s.seqstart || ' '
                   || s.seqincrement || ' ' || s.seqmin || ' ' || s.seqmax || ' ' || s.seqcache || ' ' || s.seqcycle
            FROM relations r JOIN pg_sequence s ON s.seqrelid = r.oid
            UNION ALL
            SELECT 'trigger ' || r.relname || '.' || t.tgname || ': ' || pg_get_triggerdef(t.oid)
            FROM pg_trigger t JOIN relations r ON r.oid = t.tgrelid WHERE NOT t.tgisinternal
            UNION ALL
            SELECT 'view ' || r.relname || ': ' || pg_get_viewdef(r.oid)
            FROM relations r WHERE r.relkind IN ('v', 'm')
            UNION ALL
            SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || '): '
                   || pg_get_function_arguments(p.oid) || ' returns ' || coalesce(pg_get_function_result(p.oid), '')
                   || ' ' || l.lanname || ' ' || p.prokind::text || p.provolatile::text || p.proparallel::text
                   || CASE WHEN p.proisstrict THEN ' strict' ELSE '' END
                   || coalesce(' set ' || array_to_string(p.proconfig, ','), '') || ' as ' || p.prosrc
            FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang, here
            WHERE p.pronamespace = here.oid
            UNION ALL
            SELECT 'type ' || t.typname || ': ' || t.typtype::text
            FROM pg_type t, here
            WHERE t.typnamespace = here.oid AND t.typtype NOT IN ('c', 'b') AND t.typrelid = 0
            )
            -- Some definitions name the schema (an index's table, always): names are compared without it.
            SELECT replace(e.entry, quote_ident(current_schema()) || '.', '') AS entry FROM entries e
            """)
        return Set(try rows.map { try $0.decode("entry", as: String.self) })
    }

    /// What differs, each named once: what the database has that the baseline lacks or
    /// defines otherwise, and what it lacks.
    static func differences(database: Set<String>, baseline: Set<String>) -> [String] {
        func name(_ entry: String) -> Substring { entry.prefix { $0 != ":" } }
        let ours = Dictionary(database.map { (name($0), $0) }, uniquingKeysWith: { first, _ in first })
        let theirs = Dictionary(baseline.map { (name($0), $0) }, uniquingKeysWith: { first, _ in first })
        var found: [String] = []
        for key in Set(ours.keys).union(theirs.keys).sorted() {
            switch (ours[key], theirs[key]) {
            case (.some, nil): found.append("\(key) is not in the baseline")
            case (nil, .some): found.append("\(key) is missing")
            case (let a?, let b?) where a != b: found.append("\(key) differs")
            default: break
            }
        }
        return found
    }
}
