; A simplified form of the loop llvmpipe builds for a storage-buffer load whose address differs per lane
; (emit_load_mem in gallivm's lp_bld_nir_soa.c, Mesa 22.3), as it stands after mem2reg, for 8 lanes: per lane, the
; lane's word offset and exec-mask bit are taken out of vectors at the loop counter, and an active lane's 32-bit word
; is loaded and inserted into the result vector at the counter. Mesa's loop also tests each offset against the
; buffer's size (a lane past it gets 0) and skips an inactive lane, which keeps its old value; here one branch stands
; for both tests and the inactive lane gets 0. What is measured, the insert at a variable lane index, is the same.
; llvmpipe loads storage words as integers (<8 x i32>); the f32 copy is the control. Each function sums the
; vectors it builds over n words.

define <8 x i32> @load_lanes_i32(i32* %a, i64 %n, <8 x i32> %mask) {
entry:
  %active = icmp ne <8 x i32> %mask, zeroinitializer
  br label %vector
vector:
  %i = phi i64 [0, %entry], [%i.next, %vector.end]
  %acc = phi <8 x i32> [zeroinitializer, %entry], [%acc.next, %vector.end]
  %i32 = trunc i64 %i to i32
  %ins = insertelement <8 x i32> undef, i32 %i32, i32 0
  %base = shufflevector <8 x i32> %ins, <8 x i32> undef, <8 x i32> zeroinitializer
  %offsets = add <8 x i32> %base, <i32 0, i32 1, i32 2, i32 3, i32 4, i32 5, i32 6, i32 7>
  br label %lane
lane:
  %l = phi i32 [0, %vector], [%l.next, %join]
  %r = phi <8 x i32> [zeroinitializer, %vector], [%r.next, %join]
  %offset = extractelement <8 x i32> %offsets, i32 %l
  %on = extractelement <8 x i1> %active, i32 %l
  br i1 %on, label %then, label %else
then:
  %offset64 = zext i32 %offset to i64
  %p = getelementptr i32, i32* %a, i64 %offset64
  %word = load i32, i32* %p
  %r.then = insertelement <8 x i32> %r, i32 %word, i32 %l
  br label %join
else:
  %r.else = insertelement <8 x i32> %r, i32 0, i32 %l
  br label %join
join:
  %r.next = phi <8 x i32> [%r.then, %then], [%r.else, %else]
  %l.next = add i32 %l, 1
  %done = icmp uge i32 %l.next, 8
  br i1 %done, label %vector.end, label %lane
vector.end:
  %acc.next = add <8 x i32> %acc, %r.next
  %i.next = add i64 %i, 8
  %all = icmp uge i64 %i.next, %n
  br i1 %all, label %exit, label %vector
exit:
  ret <8 x i32> %acc.next
}

define <8 x float> @load_lanes_f32(float* %a, i64 %n, <8 x i32> %mask) {
entry:
  %active = icmp ne <8 x i32> %mask, zeroinitializer
  br label %vector
vector:
  %i = phi i64 [0, %entry], [%i.next, %vector.end]
  %acc = phi <8 x float> [zeroinitializer, %entry], [%acc.next, %vector.end]
  %i32 = trunc i64 %i to i32
  %ins = insertelement <8 x i32> undef, i32 %i32, i32 0
  %base = shufflevector <8 x i32> %ins, <8 x i32> undef, <8 x i32> zeroinitializer
  %offsets = add <8 x i32> %base, <i32 0, i32 1, i32 2, i32 3, i32 4, i32 5, i32 6, i32 7>
  br label %lane
lane:
  %l = phi i32 [0, %vector], [%l.next, %join]
  %r = phi <8 x float> [zeroinitializer, %vector], [%r.next, %join]
  %offset = extractelement <8 x i32> %offsets, i32 %l
  %on = extractelement <8 x i1> %active, i32 %l
  br i1 %on, label %then, label %else
then:
  %offset64 = zext i32 %offset to i64
  %p = getelementptr float, float* %a, i64 %offset64
  %word = load float, float* %p
  %r.then = insertelement <8 x float> %r, float %word, i32 %l
  br label %join
else:
  %r.else = insertelement <8 x float> %r, float 0.0, i32 %l
  br label %join
join:
  %r.next = phi <8 x float> [%r.then, %then], [%r.else, %else]
  %l.next = add i32 %l, 1
  %done = icmp uge i32 %l.next, 8
  br i1 %done, label %vector.end, label %lane
vector.end:
  %acc.next = fadd <8 x float> %acc, %r.next
  %i.next = add i64 %i, 8
  %all = icmp uge i64 %i.next, %n
  br i1 %all, label %exit, label %vector
exit:
  ret <8 x float> %acc.next
}
