// A soft contact shadow: one quad per sample on the ground plane under its model, in object space, drawn
// with the model's own MVP, so the model (nearer) hides it where it stands in front.
in vec2 in_corner;
in mat4 i_mvp;
in vec4 i_cell;     // atlas cell, batch slot, contrast, illumination
in vec4 i_shadow0;  // centre x, ground y, centre z, darkness
in vec4 i_shadow1;  // half extents x, z

out vec2 v_r;       // position on the quad, -1..1 across the footprint
flat out float v_darkness;
out float gl_ClipDistance[4];

void main() {
    v_r = in_corner * 2.0 - 1.0;
    vec3 p = vec3(i_shadow0.x + v_r.x * i_shadow1.x, i_shadow0.y, i_shadow0.z + v_r.y * i_shadow1.y);
    vec4 c = i_mvp * vec4(p, 1.0);
    gl_ClipDistance[0] = c.w - c.x;
    gl_ClipDistance[1] = c.w + c.x;
    gl_ClipDistance[2] = c.w - c.y;
    gl_ClipDistance[3] = c.w + c.y;
    gl_Position = to_cell(c, i_cell.x);
    v_darkness = i_shadow0.w;
}
