in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
in vec4 in_color;  // linear material colour; alpha = model texture layer + 1 (0: none)

in mat4 i_mvp;
in vec4 i_view0;   // rows of view <- object [R | t]
in vec4 i_view1;
in vec4 i_view2;
in vec4 i_tex;     // mode, procedural kind, image layer, pattern scale
in vec4 i_col1;    // colour 1 (linear), specular
in vec4 i_col2;    // colour 2 (linear), shininess
in vec4 i_dir;     // stripe direction, has UVs
in vec4 i_cell;    // atlas cell, batch slot, contrast, illumination

out vec3 v_diffuse;
out vec3 v_spec;
out vec3 v_uvl;    // uv, model texture layer (-1: none)
out vec3 v_color;
out vec3 v_obj;
out vec3 v_obj_normal;
flat out vec4 v_tex;
flat out vec3 v_col1;
flat out vec3 v_col2;
flat out vec4 v_dir;
flat out vec2 v_post;
out vec3 v_lit;
out float gl_ClipDistance[4];

void main() {
    vec4 p = i_mvp * vec4(in_pos, 1.0);
    gl_ClipDistance[0] = p.w - p.x;
    gl_ClipDistance[1] = p.w + p.x;
    gl_ClipDistance[2] = p.w - p.y;
    gl_ClipDistance[3] = p.w + p.y;
    gl_Position = to_cell(p, i_cell.x);
    vec4 q = vec4(in_pos, 1.0);
    vec3 view_pos = vec3(dot(i_view0, q), dot(i_view1, q), dot(i_view2, q));
    vec3 n = vec3(dot(i_view0.xyz, in_normal), dot(i_view1.xyz, in_normal), dot(i_view2.xyz, in_normal));
    light_vertex(int(i_cell.y), n, view_pos, i_col1.w, i_col2.w, v_diffuse, v_spec);
    v_uvl = vec3(in_uv, floor(in_color.a * 255.0 + 0.5) - 1.0);
    v_color = in_color.rgb;
    v_obj = in_pos;
    v_obj_normal = in_normal;
    v_tex = i_tex;
    v_col1 = i_col1.rgb;
    v_col2 = i_col2.rgb;
    v_dir = i_dir;
    v_post = i_cell.zw;
#if PER_VERTEX_COLOUR
  #if TEXTURE_MODE == 1
    v_lit = i_col1.rgb * v_diffuse + v_spec;
  #else
    v_lit = in_color.rgb * v_diffuse + v_spec;
  #endif
#endif
}
