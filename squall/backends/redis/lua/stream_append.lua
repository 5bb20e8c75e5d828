-- include: _stream.lua
-- KEYS, ARGV: as in _stream.lua. Returns seq, or 0 if the caller must re-read the shard count.
if not shards_ok(1, 1) then return 0 end
return append(1, 1)
