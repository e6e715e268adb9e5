// Bias + activation on a row-major [rows, cols] tensor with a [cols] bias, forward and backward with the bias
// gradient. Appended by the host to storage.wgsl, activation_lib.wgsl and activation_io_packed.wgsl (operands
// x: 0, out (y or dx): 1, dy: 2, in any storage type).
//
//   bias_forward          y = f(x + b)                                   one pass
//   bias_forward_rows     the same, on the reduction grid                 needs cols % 8 == 0
//   bias_forward_rows_words  the same for f32 x and y, a 16-byte word per thread
//   bias_backward         dx = dy * f'(x + b)                            one pass (when db is not fused)
//   bias_backward_fused   dx as above, and per-block column sums of dx   one pass, needs cols % 8 == 0
//   bias_backward_fused_words  the same for f32 operands, a 16-byte word per thread   needs cols % 4 == 0
//   bias_backward_fused_pairs  the same for 16-bit operands, a u32 pair per thread    needs cols % 2 == 0
//   column_sums           per-block column sums of dx                    (fallback for other widths)
//   column_sums_words     the same for f32 dx, a 16-byte word per thread   needs cols % 4 == 0
//   column_sums_direct    db = column sums of dx, in one pass             few rows; blocks added in order
//   backward_column_sums_direct  dx = dy * f'(x) and its column sums     few rows, cols % 8 == 0
//   reduce_partials       db = sum of the per-block sums                 WG / 32 lanes of blocks per column
//
// The per-block partial sums are f32 (binding 5, stride cols8 = cols rounded up to 8); db is stored in B_T.

override WG: u32;
override PER_THREAD: u32 = 1u;
override B_T: u32 = T_F32;

struct BiasParams {
    /// 8-element units of x in this dispatch (elementwise entry points).
    units: u32,
    /// Index of this dispatch's first unit in the whole tensor (dispatches are chunked past binding limits).
    first_unit: u32,
    /// Row length.
    cols: u32,
    /// Number of rows.
    rows: u32,
    /// Rows summed by one workgroup row of the reduction entry points.
    rows_per_block: u32,
    /// Number of row blocks (partial sums per column).
    blocks: u32,
    /// Number of elements (learnable kernels mask the padding of the last unit with it).
    len: u32,
}

@group(0) @binding(3) var<uniform> params: BiasParams;
@group(0) @binding(4) var<storage, read> bias: array<u32>;
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;
@group(0) @binding(6) var<storage, read_write> db_out: array<vec4<u32>>;

fn load_bias(c: u32) -> f32 {
    if (B_T == T_F32) {
        return bitcast<f32>(bias[c]);
    }
    return half_to_f32(B_T, (bias[c >> 1u] >> ((c & 1u) * 16u)) & 0xffffu);
}

/// The bias of columns c .. c + 3 (within the row).
fn bias_word(c: u32) -> vec4<f32> {
    return vec4<f32>(load_bias(c), load_bias(c + 1u), load_bias(c + 2u), load_bias(c + 3u));
}

/// The bias of elements e0 .. e0 + 7 (wrapping at the row end).
fn bias_oct(e0: u32) -> Oct {
    var v: array<f32, 8>;
    var c = e0 % params.cols;
    for (var k = 0u; k < 8u; k++) {
        v[k] = load_bias(c);
        c += 1u;
        if (c >= params.cols) {
            c = 0u;
        }
    }
    return Oct(vec4<f32>(v[0], v[1], v[2], v[3]), vec4<f32>(v[4], v[5], v[6], v[7]));
}

/// The stride of the per-block partial sums: cols rounded up to 8.
fn partial_stride() -> u32 {
    return (params.cols + 7u) / 8u * 8u;
}

/// Writes four partial sums at partial[p .. p + 4].
fn store_partial4(p: u32, acc: vec4<f32>) {
    partial[p] = acc.x;
    partial[p + 1u] = acc.y;
    partial[p + 2u] = acc.z;
    partial[p + 3u] = acc.w;
}

/// Writes eight partial sums at partial[p .. p + 8].
fn store_partial(p: u32, acc: Oct) {
    store_partial4(p, acc.a);
    store_partial4(p + 4u, acc.b);
}

/// Rows `[x, y)` of row block `block` (grid y of the reduction entry points).
fn block_rows(block: u32) -> vec2<u32> {
    let first = block * params.rows_per_block;
    return vec2<u32>(first, min(params.rows, first + params.rows_per_block));
}

fn add8(p: Oct, q: Oct) -> Oct {
    return Oct(p.a + q.a, p.b + q.b);
}

/// Element i of the output binding (dx), widened to f32.
fn load_out_elem(i: u32) -> f32 {
    if (OUT_T == T_F32) {
        return bitcast<f32>(out[i >> 2u][i & 3u]);
    }
    let w = out[i >> 3u][(i >> 1u) & 3u];
    return half_to_f32(OUT_T, (w >> ((i & 1u) * 16u)) & 0xffffu);
}

fn store_db(u: u32, v: Oct) {
    if (B_T == T_F32) {
        db_out[2u * u] = bitcast<vec4<u32>>(v.a);
        db_out[2u * u + 1u] = bitcast<vec4<u32>>(v.b);
    } else {
        db_out[u] = pack_oct(B_T, v);
    }
}

/// The column thread of the row kernels' grid: x, continued along z past the device's per-dimension limit,
/// covers the columns; y is the row block.
fn column_thread(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.z * nwg.x) * WG + lid.x;
}

fn first_unit(wid: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG * PER_THREAD + lid.x;
}

@compute @workgroup_size(WG)
fn bias_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            store_out(u, fwd8(add8(load_x(u), bias_oct(8u * (params.first_unit + u)))));
        }
    }
}

/// y = f(x + b) for cols % 8 == 0, on the reductions' grid (x: column units, y: row blocks): each thread loads
/// its unit of bias once and walks rows_per_block rows, with no per-element column arithmetic.
@compute @workgroup_size(WG)
fn bias_forward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let col_units = params.cols / 8u;
    let cu = column_thread(wid, nwg, lid);
    if (cu >= col_units) {
        return;
    }
    let b = bias_oct(8u * cu);
    let rows = block_rows(wid.y);
    for (var r = rows.x; r < rows.y; r++) {
        let u = r * col_units + cu;
        store_out(u, fwd8(add8(load_x(u), b)));
    }
}

/// `bias_forward_rows` for operands that are all f32 (cols % 8 == 0 still): x covers the cols / 4 column words, so
/// that neighbouring threads touch neighbouring 16-byte words of every row, as the elementwise f32 kernels do.
@compute @workgroup_size(WG)
fn bias_forward_rows_words(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_id) lid: vec3<u32>) {
    let col_words = params.cols / 4u;
    let cw = column_thread(wid, nwg, lid);
    if (cw >= col_words) {
        return;
    }
    let c = 4u * cw;
    let b = bias_word(c);
    let rows = block_rows(wid.y);
    for (var r = rows.x; r < rows.y; r++) {
        let w = r * col_words + cw;
        store_out4(w, fwd4(load_x4(w) + b));
    }
}

@compute @workgroup_size(WG)
fn bias_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = first_unit(wid, nwg, lid);
    for (var k = 0u; k < PER_THREAD; k++) {
        let u = base + k * WG;
        if (u < params.units) {
            store_out(u, bwd8(add8(load_x(u), bias_oct(8u * (params.first_unit + u))), load_dy(u)));
        }
    }
}

/// Grid: x covers the cols / 8 column units (WG per workgroup), y the row blocks. Each thread walks its block's
/// rows down one column unit, writing dx and summing it.
@compute @workgroup_size(WG)
fn bias_backward_fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let col_units = params.cols / 8u;
    let cu = column_thread(wid, nwg, lid);
    if (cu >= col_units) {
        return;
    }
    let b = bias_oct(8u * cu);
    let rows = block_rows(wid.y);
    var acc = Oct(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var r = rows.x; r < rows.y; r++) {
        let u = r * col_units + cu;
        let dx = bwd8(add8(load_x(u), b), load_dy(u));
        store_out(u, dx);
        acc = add8(acc, dx);
    }
    store_partial(wid.y * params.cols + 8u * cu, acc);
}

/// `bias_backward_fused` for operands that are all f32 and cols % 4 == 0: x covers the cols / 4 column words, so
/// that neighbouring threads touch neighbouring 16-byte words of every row.
@compute @workgroup_size(WG)
fn bias_backward_fused_words(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_id) lid: vec3<u32>) {
    let col_words = params.cols / 4u;
    let cw = column_thread(wid, nwg, lid);
    if (cw >= col_words) {
        return;
    }
    let c = 4u * cw;
    let b = bias_word(c);
    let rows = block_rows(wid.y);
    var acc = vec4<f32>(0.0);
    for (var r = rows.x; r < rows.y; r++) {
        let w = r * col_words + cw;
        let dx = bwd4(load_x4(w) + b, load_dy4(w));
        store_out4(w, dx);
        acc += dx;
    }
    store_partial4(wid.y * partial_stride() + c, acc);
}

/// `bias_backward_fused` for 16-bit x, dy and dx whose width is even but not whole 8-element units: thread `cp`
/// owns columns 2 cp and 2 cp + 1, one u32 word of every row (rows start on whole words), writing dx a word at a
/// time and summing it. Grid: x (and z) cover the cols / 2 column pairs, y the row blocks.
@compute @workgroup_size(WG)
fn bias_backward_fused_pairs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_id) lid: vec3<u32>) {
    let pairs = params.cols / 2u;
    let cp = column_thread(wid, nwg, lid);
    if (cp >= pairs) {
        return;
    }
    let b = vec2<f32>(load_bias(2u * cp), load_bias(2u * cp + 1u));
    let rows = block_rows(wid.y);
    var acc = vec2<f32>(0.0);
    for (var r = rows.x; r < rows.y; r++) {
        let w = r * pairs + cp;
        let x = unpack_pair(X_T, x_in[w >> 2u][w & 3u]) + b;
        let d = unpack_pair(DY_T, dy_in[w >> 2u][w & 3u]);
        let dx = vec2<f32>(act_backward(x.x, d.x), act_backward(x.y, d.y));
        out[w >> 2u][w & 3u] = pack_pair(OUT_T, dx.x, dx.y);
        acc += dx;
    }
    let p = wid.y * partial_stride() + 2u * cp;
    partial[p] = acc.x;
    partial[p + 1u] = acc.y;
}

/// Grid: x covers the columns, y the row blocks. Partial column sums of an existing dx (binding 1).
@compute @workgroup_size(WG)
fn column_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = column_thread(wid, nwg, lid);
    if (c >= params.cols) {
        return;
    }
    let rows = block_rows(wid.y);
    var acc = 0.0;
    for (var r = rows.x; r < rows.y; r++) {
        acc += load_out_elem(r * params.cols + c);
    }
    partial[wid.y * partial_stride() + c] = acc;
}

/// `column_sums` for f32 dx with cols % 4 == 0: thread `cw` sums the 16-byte word of columns 4 cw .. 4 cw + 3 down
/// its row block (the same additions in the same order, four columns at a time). Grid: x covers the cols / 4
/// column words, y the row blocks.
@compute @workgroup_size(WG)
fn column_sums_words(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let col_words = params.cols / 4u;
    let cw = column_thread(wid, nwg, lid);
    if (cw >= col_words) {
        return;
    }
    let rows = block_rows(wid.y);
    var acc = vec4<f32>(0.0);
    for (var r = rows.x; r < rows.y; r++) {
        acc += bitcast<vec4<f32>>(out[r * col_words + cw]);
    }
    store_partial4(wid.y * partial_stride() + 4u * cw, acc);
}

/// Column sums of an existing dx (binding 1) into db in one pass, for few rows (the host decides): thread `cu`
/// sums columns 8 cu .. 8 cu + 7 over each row block as `column_sums` does, and adds the block sums in block order,
/// which is `reduce_partials`'s order for up to WG / 32 blocks (8, or 4 where the device's workgroups hold fewer
/// than 256 threads): the same bits as those two passes there, the same sums in another order past it. Grid: x
/// covers the column units of db.
@compute @workgroup_size(WG)
fn column_sums_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_id) lid: vec3<u32>) {
    let cu = column_thread(wid, nwg, lid);
    if (8u * cu >= params.cols) {
        return;
    }
    var total = Oct(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var blk = 0u; blk < params.blocks; blk++) {
        let rows = block_rows(blk);
        var acc: array<f32, 8>;
        for (var r = rows.x; r < rows.y; r++) {
            for (var k = 0u; k < 8u; k++) {
                let c = 8u * cu + k;
                if (c < params.cols) {
                    acc[k] += load_out_elem(r * params.cols + c);
                }
            }
        }
        total = add8(total, Oct(vec4<f32>(acc[0], acc[1], acc[2], acc[3]), vec4<f32>(acc[4], acc[5], acc[6], acc[7])));
    }
    store_db(cu, total);
}

/// dx = dy * f'(x) (no bias) and db = column sums of dx in one pass, for few rows and cols % 8 == 0 (the host
/// decides): thread `cu` owns the 8-element column unit `cu` of every row and walks the row blocks as
/// `column_sums_direct` does. dx and db have the bits of the activation's backward followed by
/// `column_sums_direct` when dx is f32 (the sums add the stored values). Grid: x covers the cols / 8 column units.
@compute @workgroup_size(WG)
fn backward_column_sums_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                               @builtin(local_invocation_id) lid: vec3<u32>) {
    let cu = column_thread(wid, nwg, lid);
    let units = params.cols / 8u;
    if (cu >= units) {
        return;
    }
    var total = Oct(vec4<f32>(0.0), vec4<f32>(0.0));
    for (var blk = 0u; blk < params.blocks; blk++) {
        let rows = block_rows(blk);
        var acc = Oct(vec4<f32>(0.0), vec4<f32>(0.0));
        for (var r = rows.x; r < rows.y; r++) {
            let u = r * units + cu;
            let dx = bwd8(load_x(u), load_dy(u));
            store_out(u, dx);
            acc = add8(acc, dx);
        }
        total = add8(total, acc);
    }
    store_db(cu, total);
}

/// Columns of one `reduce_partials` workgroup of WG threads (256, or 128 where the device's workgroups hold
/// fewer): 32 neighbouring columns (a 128-byte segment of a block's partial sums per lane) times WG / 32 lanes
/// (8, or 4).
const REDUCE_COLS: u32 = 32u;
var<workgroup> lane_sums: array<f32, 256>;

/// db = sum of the blocks' partial sums (stride cols rounded up to 8). Grid: 2D, flattened, one workgroup per 32
/// columns. Lane `l` of a column sums blocks l, l + L, l + 2L, ... in order (L = WG / 32 lanes); the column's sum
/// is then lane 0 + lane 1 + ... + lane L-1, in that order (with at most L blocks: the blocks in order). A thread
/// per (column, lane) keeps many loads in flight where one thread walking every block of 8 columns waited on each
/// in turn (about 0.5 us per block on an NVIDIA H200).
@compute @workgroup_size(WG)
fn reduce_partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let cols8 = partial_stride();
    let group = wid.x + wid.y * nwg.x;
    let col = li % REDUCE_COLS;
    let lane = li / REDUCE_COLS;
    let lanes = WG / REDUCE_COLS;
    let c = group * REDUCE_COLS + col;
    var acc = 0.0;
    // Columns past `cols` (db's padding up to a whole unit) are 0: the kernels that wrote the partial sums may
    // have left those slots as an earlier reduction did.
    if (c < params.cols) {
        for (var blk = lane; blk < params.blocks; blk += lanes) {
            acc += partial[blk * cols8 + c];
        }
    }
    lane_sums[li] = acc;
    workgroupBarrier();
    if (lane == 0u) {
        var total = acc;
        for (var l = 1u; l < lanes; l++) {
            total += lane_sums[l * REDUCE_COLS + col];
        }
        // Lane 0's own slot: the other lane-0 threads read only lanes 1 and up.
        lane_sums[col] = total;
    }
    workgroupBarrier();
    let u = group * (REDUCE_COLS / 8u) + li;
    if (li < REDUCE_COLS / 8u && 8u * u < cols8) {
        let p = 8u * li;
        store_db(u, Oct(vec4<f32>(lane_sums[p], lane_sums[p + 1u], lane_sums[p + 2u], lane_sums[p + 3u]),
                        vec4<f32>(lane_sums[p + 4u], lane_sums[p + 5u], lane_sums[p + 6u], lane_sums[p + 7u])));
    }
}
