namespace Servables.Async;

/// <summary>The Lua scripts of <see cref="RedisAsyncResultStore"/>: each change of a request is one script, so Redis applies it whole or not at all.</summary>
/// <remarks>
/// <para>
/// Keys, under the API's namespace <c>{prefix:api}</c> (one hash tag, so one shard): <c>:r:&lt;id&gt;</c> a request's hash,
/// <c>:q</c> the stream of submits (its group <see cref="RedisAsyncResultStore.Group"/> is read by every host's lanes),
/// <c>:queued</c> how many submits wait (added, not yet handed to a host), <c>:open</c> unfinished ids by submit time,
/// <c>:done</c> finished ids by expiry.
/// </para>
/// <para>
/// A request's hash: <c>st</c> its <see cref="AsyncRequestState"/> as a number; <c>ct</c>, <c>pl</c> (until it finishes);
/// <c>sub</c> and <c>upd</c> exact .NET ticks (UTC) as text; <c>res</c> the result or error; <c>exp</c> when it expires, in
/// Unix microseconds rounded up (times compared inside Redis are Unix microseconds: exact in a Lua number);
/// <c>sid</c> its stream entry; <c>dl</c> how often it was handed to a host; <c>rq</c> handed back by a host and waiting
/// again (counted in <c>:queued</c> although <c>dl</c> is set); <c>cx</c> a cancel asked while it ran.
/// A finished request's hash also gets the retention as Redis's own expiry, so that a store nobody scans stays bounded.
/// </para>
/// </remarks>
internal static class RedisScripts
{
    /// <summary>KEYS: r, q, queued, open, done, idle. ARGV: id, content type, payload, submitted ticks, updated ticks, submitted µs, now µs, capacity, work channel prefix.</summary>
    /// <remarks>
    /// One idle host is told (on its own channel): a host that found nothing to take put itself in the idle set in the same
    /// script (having begun to listen before it looked), so a submit wakes exactly one host, and none while all are busy.
    /// </remarks>
    /// <returns>1 added; 0 the id exists and has not expired; -1 the queue is full.</returns>
    public const string Add = """
        if redis.call('EXISTS', KEYS[1]) == 1 then
          local f = redis.call('HMGET', KEYS[1], 'st', 'exp')
          if tonumber(f[1]) < 3 or tonumber(f[2]) > tonumber(ARGV[7]) then return 0 end
          redis.call('DEL', KEYS[1])
          redis.call('ZREM', KEYS[5], ARGV[1])
        end
        local waiting = tonumber(redis.call('GET', KEYS[3]) or '0')
        if waiting >= tonumber(ARGV[8]) then return -1 end
        local sid = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
        redis.call('HSET', KEYS[1], 'st', 1, 'ct', ARGV[2], 'pl', ARGV[3], 'sub', ARGV[4], 'upd', ARGV[5], 'sid', sid)
        redis.call('INCR', KEYS[3])
        redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
        local idle = redis.call('SPOP', KEYS[6])
        if idle then redis.call('PUBLISH', ARGV[9] .. idle, '') end
        return 1
        """;

    /// <summary>KEYS: r. ARGV: ticks.</summary>
    /// <returns>1 when the request was queued and is in progress now; else 0.</returns>
    public const string MarkInProgress = """
        if redis.call('HGET', KEYS[1], 'st') ~= '1' then return 0 end
        redis.call('HSET', KEYS[1], 'st', 2, 'upd', ARGV[1])
        return 1
        """;

    /// <summary>
    /// KEYS: r, q, queued, open, done. ARGV: id, state (3 or 4), text, ticks, expiry µs, retention ms, group, done channel,
    /// only-if-queued (1 for a caller's cancel), cancel channel.
    /// </summary>
    /// <remarks>The news of the finish carries the outcome (<c>id\nstate\nticks\ntext</c>) when its text is at most 8 KiB, so that waiters need not read it; else just the id.</remarks>
    /// <returns>1 finished now (acknowledged in the stream); 0 unknown or finished already; 2 (a cancel) in progress: its host was asked to cancel it.</returns>
    public const string Finish = """
        local f = redis.call('HMGET', KEYS[1], 'st', 'sid', 'dl', 'rq')
        local st = tonumber(f[1])
        if not st or st >= 3 then return 0 end
        if ARGV[9] == '1' and st ~= 1 then
          redis.call('HSET', KEYS[1], 'cx', 1)
          redis.call('PUBLISH', ARGV[10], ARGV[1])
          return 2
        end
        redis.call('HSET', KEYS[1], 'st', ARGV[2], 'res', ARGV[3], 'upd', ARGV[4], 'exp', ARGV[5])
        redis.call('HDEL', KEYS[1], 'pl', 'rq')
        redis.call('PEXPIRE', KEYS[1], ARGV[6])
        redis.call('ZREM', KEYS[4], ARGV[1])
        redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])
        if f[2] then
          redis.call('XACK', KEYS[2], ARGV[7], f[2])
          redis.call('XDEL', KEYS[2], f[2])
        end
        if not f[3] or f[4] then redis.call('DECR', KEYS[3]) end
        if string.len(ARGV[3]) <= 8192 then
          redis.call('PUBLISH', ARGV[8], ARGV[1] .. '\n' .. ARGV[2] .. '\n' .. ARGV[4] .. '\n' .. ARGV[3])
        else
          redis.call('PUBLISH', ARGV[8], ARGV[1])
        end
        return 1
        """;

    /// <summary>
    /// Hands requests to a host: new ones (ARGV[11] is <c>new</c>) or ones held by another host for longer than ARGV[11] ms.
    /// KEYS: q, queued, open, done, idle. ARGV: group, consumer, count, request key prefix, max deliveries, ticks, expiry µs,
    /// retention ms, done channel, too-many-deliveries error, mode, cancelled error.
    /// </summary>
    /// <remarks>
    /// A take of new requests that finds none puts the host in the idle set, for the next submit to wake. A take-over also
    /// deletes the group's consumers that hold nothing and were silent for as long (hosts that died, once their requests
    /// were taken over): a live host silent that long is idle, and its next read makes it a consumer again.
    /// </remarks>
    /// <returns>
    /// Two lists: the requests handed over (each: id, state, content type, payload, submitted ticks, updated ticks, stream
    /// entry), and the ids failed instead (a cancel asked while it ran on a host that stopped, or too many deliveries).
    /// </returns>
    public const string Take = """
        local entries
        if ARGV[11] == 'new' then
          local got = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], '>')
          if not got then
            redis.call('SADD', KEYS[5], ARGV[2])
            return {{}, {}}
          end
          entries = got[1][2]
          redis.call('DECRBY', KEYS[2], #entries)
        else
          entries = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[11], '0-0', 'COUNT', ARGV[3])[2]
          for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
            local info = {}
            for i = 1, #c, 2 do info[c[i]] = c[i + 1] end
            if info['pending'] == 0 and info['idle'] >= tonumber(ARGV[11]) and info['name'] ~= ARGV[2] then
              redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
            end
          end
        end
        local out = {}
        local failed = {}
        for _, e in ipairs(entries) do
          local sid = e[1]
          local id = e[2][2]
          local key = ARGV[4] .. id
          local f = redis.call('HMGET', key, 'st', 'ct', 'pl', 'sub', 'upd', 'sid', 'cx')
          if not f[1] or tonumber(f[1]) >= 3 or f[6] ~= sid then
            redis.call('XACK', KEYS[1], ARGV[1], sid)
            redis.call('XDEL', KEYS[1], sid)
          else
            local dl = redis.call('HINCRBY', key, 'dl', 1)
            redis.call('HDEL', key, 'rq')
            local why = false
            if f[7] then why = ARGV[12] elseif dl > tonumber(ARGV[5]) then why = ARGV[10] end
            if why then
              redis.call('HSET', key, 'st', 4, 'res', why, 'upd', ARGV[6], 'exp', ARGV[7])
              redis.call('HDEL', key, 'pl')
              redis.call('PEXPIRE', key, ARGV[8])
              redis.call('ZREM', KEYS[3], id)
              redis.call('ZADD', KEYS[4], ARGV[7], id)
              redis.call('XACK', KEYS[1], ARGV[1], sid)
              redis.call('XDEL', KEYS[1], sid)
              redis.call('PUBLISH', ARGV[9], id)
              table.insert(failed, id)
            else
              table.insert(out, {id, f[1], f[2], f[3], f[4], f[5], sid})
            end
          end
        end
        return {out, failed}
        """;

    /// <summary>KEYS: r, q, queued, idle. ARGV: id, stream entry, group, consumer, ticks, work channel prefix.</summary>
    /// <remarks>
    /// A host hands back a request it took and will not finish (it stops, or gave up storing the outcome): if it still
    /// holds that entry (no other host took it over) and the request is unfinished, the entry is acknowledged and deleted
    /// and the request queued again at the stream's end, in_queue, counted against the capacity, its deliveries kept; one
    /// idle host other than this one is woken, as by a submit. A cancel asked while it ran still fails it at its next delivery.
    /// </remarks>
    /// <returns>1 handed back; 0 finished, or no longer this host's.</returns>
    public const string HandBack = """
        local f = redis.call('HMGET', KEYS[1], 'st', 'sid')
        if not f[1] or tonumber(f[1]) >= 3 or f[2] ~= ARGV[2] then return 0 end
        local pending = redis.call('XPENDING', KEYS[2], ARGV[3], ARGV[2], ARGV[2], 1)
        if #pending == 0 or pending[1][2] ~= ARGV[4] then return 0 end
        redis.call('XACK', KEYS[2], ARGV[3], ARGV[2])
        redis.call('XDEL', KEYS[2], ARGV[2])
        local sid = redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
        redis.call('HSET', KEYS[1], 'st', 1, 'sid', sid, 'upd', ARGV[5], 'rq', 1)
        redis.call('INCR', KEYS[3])
        redis.call('SREM', KEYS[4], ARGV[4])
        local idle = redis.call('SPOP', KEYS[4])
        if idle then redis.call('PUBLISH', ARGV[6] .. idle, '') end
        return 1
        """;

    /// <summary>KEYS: q. ARGV: group, consumer, then the stream entries this host holds.</summary>
    /// <remarks>
    /// Renews this host's hold on each entry it still owns (resets its idle time); an entry another host took over (this
    /// one was silent past the visibility timeout) or that is gone is left alone, so that two hosts never claim one
    /// entry back and forth.
    /// </remarks>
    /// <returns>The entries this host no longer holds.</returns>
    public const string Renew = """
        local lost = {}
        for i = 3, #ARGV do
          local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
          if #pending > 0 and pending[1][2] == ARGV[2] then
            redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
          else
            table.insert(lost, ARGV[i])
          end
        end
        return lost
        """;

    /// <summary>KEYS: q, idle. ARGV: group, consumer.</summary>
    /// <remarks>A host that stops leaves the idle set, and the consumer group too when it holds nothing (what it holds stays for another host to take over).</remarks>
    /// <returns>1 when the consumer was deleted.</returns>
    public const string Leave = """
        redis.call('SREM', KEYS[2], ARGV[2])
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
        if #pending > 0 then return 0 end
        redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
        return 1
        """;

    /// <summary>KEYS: done. ARGV: now µs, request key prefix, limit.</summary>
    /// <returns>How many requests were deleted, and how many ids were looked at (the limit: call again).</returns>
    public const string RemoveExpired = """
        local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
        local removed = 0
        for _, id in ipairs(ids) do
          local key = ARGV[2] .. id
          local f = redis.call('HMGET', key, 'st', 'exp')
          if f[1] and tonumber(f[1]) >= 3 and tonumber(f[2]) <= tonumber(ARGV[1]) then
            redis.call('DEL', key)
            removed = removed + 1
          end
          redis.call('ZREM', KEYS[1], id)
        end
        return {removed, #ids}
        """;
}
